// Canvas drawing that needs no graph library: the notes (issues, errors, streamed text) shown under a node, and
// wrapping text to a width.

/** Wrapped notes under a node (errors, issues, streamed text): at most a few lines each. */
export function drawNotes(ctx, notes, width, top) {
  ctx.save();
  ctx.font = "12px system-ui, sans-serif";
  const lines = [];
  for (const note of notes) {
    const wrapped = wrapLines(ctx, note.text, width - 16);
    const kept = note.tail ? wrapped.slice(-8) : wrapped.slice(0, 6);
    if (!note.tail && wrapped.length > kept.length) kept[kept.length - 1] += " …";
    for (const line of kept) lines.push({ line, colour: note.colour });
  }
  const height = lines.length * 16 + 10;
  ctx.fillStyle = "rgba(12, 14, 17, 0.92)";
  ctx.strokeStyle = "#3a3f48";
  ctx.beginPath();
  ctx.roundRect(0, top, width, height, 6);
  ctx.fill();
  ctx.stroke();
  lines.forEach(({ line, colour }, i) => {
    ctx.fillStyle = colour;
    ctx.fillText(line, 8, top + 18 + i * 16);
  });
  ctx.restore();
}

/** `text` in lines that fit `width` at the context's font (paragraphs kept). */
export function wrapLines(ctx, text, width) {
  const lines = [];
  for (const paragraph of String(text).split("\n")) {
    let line = "";
    for (const word of paragraph.split(/(\s+)/)) {
      if (ctx.measureText(line + word).width > width && line) {
        lines.push(line.trimEnd());
        line = word.trimStart();
      } else {
        line += word;
      }
    }
    lines.push(line);
  }
  return lines;
}
