// Mask painting on an uploaded picture: brush and eraser of any size over the picture; saving uploads a copy
// whose alpha channel is the mask (painted = transparent, the area to inpaint; ComfyUI's LoadImage convention),
// ready for image.load and the inpainting nodes.

import { h, modal, toast } from "./ui.js";

const SHOWN = 512;

/** Paint a mask on uploaded picture `artifact`; resolves to the new upload's artifact id, or null. */
export async function paintMask(api, artifact) {
  const picture = new Image();
  picture.src = await api.mediaUrl(`/api/artifacts/${artifact}`);
  await picture.decode();
  const [width, height] = [picture.naturalWidth, picture.naturalHeight];
  const mask = h("canvas.mask-layer", { width, height });
  const view = h("canvas.mask-view", { width, height });
  const scale = Math.min(8, SHOWN / Math.max(width, height));  // small pictures are shown larger, to paint on
  view.style.width = `${Math.round(width * scale)}px`;
  view.style.height = `${Math.round(height * scale)}px`;
  const size = h("input", { type: "range", min: 1, max: Math.max(4, Math.round(Math.max(width, height) / 4)),
                            value: Math.max(2, Math.round(Math.max(width, height) / 16)), name: "size" });
  const eraser = h("input", { type: "checkbox", name: "eraser" });
  const redraw = () => {
    const ctx = view.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    ctx.drawImage(picture, 0, 0);
    ctx.globalAlpha = 0.55;
    ctx.drawImage(mask, 0, 0);
    ctx.globalAlpha = 1;
  };
  let last = null;
  const paint = (event) => {
    const box = view.getBoundingClientRect();
    const point = [(event.clientX - box.left) * (width / box.width), (event.clientY - box.top) * (height / box.height)];
    const ctx = mask.getContext("2d");
    ctx.globalCompositeOperation = eraser.checked ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = "#ff3b5c";
    ctx.lineWidth = Number(size.value);
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(...(last ?? point));
    ctx.lineTo(...point);
    ctx.stroke();
    last = point;
    redraw();
  };
  view.addEventListener("pointerdown", (event) => {
    view.setPointerCapture(event.pointerId);
    last = null;
    paint(event);
  });
  view.addEventListener("pointermove", (event) => {
    if (view.hasPointerCapture(event.pointerId)) paint(event);
  });
  view.addEventListener("pointerup", () => {
    last = null;
  });
  redraw();
  const body = h("div.mask-editor", {}, view,
    h("div.mask-tools", {}, h("label", {}, "brush size ", size), h("label", {}, eraser, " eraser"),
      h("button.small", { type: "button", onclick: () => {
        mask.getContext("2d").clearRect(0, 0, width, height);
        redraw();
      } }, "Clear")));
  const save = await modal({ title: "Paint a mask (the painted area becomes transparent)", body, className: "wide",
                             buttons: [{ label: "Save mask", value: true, primary: true }] });
  if (!save) return null;
  const blob = await maskedPicture(picture, mask, width, height);
  try {
    const uploaded = await api.upload(new File([blob], `masked-${artifact}.png`, { type: "image/png" }));
    toast("Mask saved with the picture (uploaded)", "ok");
    return uploaded.artifact;
  } catch (error) {
    toast(`Could not upload the masked picture: ${error.message}`, "error");
    return null;
  }
}

/** The picture as PNG with alpha 0 where the mask is painted, 255 elsewhere. */
function maskedPicture(picture, mask, width, height) {
  const out = h("canvas", { width, height });
  const ctx = out.getContext("2d");
  ctx.drawImage(picture, 0, 0);
  const pixels = ctx.getImageData(0, 0, width, height);
  const painted = mask.getContext("2d").getImageData(0, 0, width, height).data;
  for (let i = 3; i < pixels.data.length; i += 4) pixels.data[i] = painted[i] > 0 ? 0 : 255;
  ctx.putImageData(pixels, 0, 0);
  return new Promise((resolve) => out.toBlob(resolve, "image/png"));
}
