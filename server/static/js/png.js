// The graph a nodeforge PNG carries: its "nodeforge.graph" text chunk (tEXt, zTXt or iTXt), read in the page.

const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
export const GRAPH_CHUNK = "nodeforge.graph";

/** The text chunks of a PNG as {keyword: text}. Throws when the bytes are not a PNG. */
export async function pngTexts(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < 8 || SIGNATURE.some((value, i) => bytes[i] !== value)) throw new Error("not a PNG file");
  const view = new DataView(buffer);
  const latin1 = new TextDecoder("latin1");
  const utf8 = new TextDecoder("utf-8");
  const texts = {};
  let offset = 8;
  while (offset + 8 <= bytes.length) {
    const length = view.getUint32(offset);
    const kind = latin1.decode(bytes.subarray(offset + 4, offset + 8));
    const data = bytes.subarray(offset + 8, offset + 8 + length);
    offset += 12 + length;
    if (kind === "IEND") break;
    if (kind !== "tEXt" && kind !== "zTXt" && kind !== "iTXt") continue;
    const nul = data.indexOf(0);
    if (nul < 0) continue;
    const keyword = latin1.decode(data.subarray(0, nul));
    if (kind === "tEXt") {
      texts[keyword] = latin1.decode(data.subarray(nul + 1));
    } else if (kind === "zTXt") {
      texts[keyword] = latin1.decode(await inflate(data.subarray(nul + 2)));
    } else {
      const compressed = data[nul + 1] === 1;
      let at = nul + 3;
      at = data.indexOf(0, at) + 1; // language tag
      at = data.indexOf(0, at) + 1; // translated keyword
      const body = data.subarray(at);
      texts[keyword] = utf8.decode(compressed ? await inflate(body) : body);
    }
  }
  return texts;
}

async function inflate(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The graph document embedded in a nodeforge PNG; throws with a reason a person can act on. */
export async function graphFromPng(buffer) {
  const texts = await pngTexts(buffer);
  const text = texts[GRAPH_CHUNK];
  if (text === undefined) throw new Error(`this PNG carries no nodeforge graph (no "${GRAPH_CHUNK}" text chunk)`);
  return JSON.parse(text);
}
