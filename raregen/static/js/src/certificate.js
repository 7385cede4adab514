// /records/<txid>/<vout>/certificate: the QR code of the public record page, drawn as SVG
// elements (no inline style: the page runs under the site's CSP), and the print button.

import encodeQR from 'qr';
import { $ } from './util.js';

const SVG = 'http://www.w3.org/2000/svg';
const QUIET = 4; // modules of white border (ISO/IEC 18004 quiet zone)

/** Draw `text` as a QR code (error correction "medium") into `box`: one <svg>, one <path>. */
export function drawQR(box, text) {
  const modules = encodeQR(text, 'raw', { ecc: 'medium' });
  const size = modules.length + 2 * QUIET;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${size} ${size}`);
  svg.setAttribute('shape-rendering', 'crispEdges');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'qr-svg');
  const ground = document.createElementNS(SVG, 'rect');
  for (const [k, v] of [['width', size], ['height', size], ['fill', '#fff']]) ground.setAttribute(k, v);
  let d = '';
  modules.forEach((row, y) => {
    row.forEach((dark, x) => {
      if (dark) d += `M${x + QUIET} ${y + QUIET}h1v1h-1z`;
    });
  });
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000');
  svg.append(ground, path);
  box.replaceChildren(svg);
  box.dataset.modules = String(modules.length);
}

const box = $('#record-qr');
if (box?.dataset.qrText) {
  try {
    drawQR(box, box.dataset.qrText);
  } catch {
    box.textContent = 'The QR code could not be drawn; the address is printed below.';
  }
}
$('#print-certificate')?.addEventListener('click', () => window.print());
