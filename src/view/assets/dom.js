// DOM helpers. Everything from the store is untrusted text: it only ever
// enters the page as a text node (createTextNode / textContent), never as
// markup. Attributes are set one by one, and links only ever point inside
// the page (`#/…`).

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function setAttrs(node, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    } else if (k === 'href') {
      const s = String(v);
      // Only in-page routes: never a `javascript:` or other scheme.
      node.setAttribute('href', s.startsWith('#/') ? s : '#/');
    } else {
      node.setAttribute(k, String(v));
    }
  }
}

// el('a', {href: '#/runs'}, 'text', child, …)
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  return append(node, children);
}

export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  return append(node, children);
}

// A route link: `#/page?k=v&…` with the values encoded.
export function route(page, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return '#/' + page + (s ? '?' + s : '');
}

export function link(page, params, ...children) {
  return el('a', { href: route(page, params) }, ...children);
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function fmt(v) {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    return (Math.round(v * 1000) / 1000).toString();
  }
  return String(v);
}

// A table: columns [{key, label, render?, sort?}], rows; clicking a
// sortable header calls onSort(key).
export function table(columns, rows, opts = {}) {
  const head = el('tr', null, columns.map((c) => {
    const label = c.label ?? c.key;
    if (!opts.onSort || c.sort === false) return el('th', null, label);
    const active = opts.sort === c.key;
    const arrow = active ? (opts.dir === 'desc' ? ' ▼' : ' ▲') : '';
    return el('th', { class: 'sortable' + (active ? ' active' : ''),
      on: { click: () => opts.onSort(c.key) } }, label + arrow);
  }));
  const body = rows.map((r, i) => el('tr', opts.rowAttrs ? opts.rowAttrs(r, i) : null,
    columns.map((c) => el('td', { class: c.cls || null }, c.render ? c.render(r) : fmt(r[c.key])))));
  return el('table', { class: 'grid' }, el('thead', null, head), el('tbody', null, body));
}

// A horizontal bar chart of rows (label column, value column).
export function barChart(rows, label, value, opts = {}) {
  const w = opts.width || 520;
  const bar = 18;
  const gap = 6;
  const labelW = 170;
  const max = Math.max(1e-9, ...rows.map((r) => Number(r[value]) || 0));
  const h = rows.length * (bar + gap) + 24;
  const root = svg('svg', { width: w, height: h, class: 'chart', role: 'img',
    'aria-label': `${value} by ${label}` });
  rows.forEach((r, i) => {
    const v = Number(r[value]) || 0;
    const y = i * (bar + gap);
    const bw = Math.max(1, (w - labelW - 70) * (v / max));
    root.appendChild(svg('text', { x: labelW - 6, y: y + bar - 4, 'text-anchor': 'end', class: 'chart-label' },
      fmt(r[label]).slice(0, 28)));
    root.appendChild(svg('rect', { x: labelW, y, width: bw, height: bar, class: 'chart-bar' },
      svg('title', null, `${fmt(r[label])}: ${fmt(v)}`)));
    root.appendChild(svg('text', { x: labelW + bw + 6, y: y + bar - 4, class: 'chart-value' }, fmt(v)));
  });
  root.appendChild(svg('text', { x: labelW, y: h - 6, class: 'chart-axis' }, value));
  return root;
}

export function pre(text, cls) {
  return el('pre', { class: cls || 'text' }, text ?? '');
}

// Key/value list.
export function facts(pairs) {
  return el('dl', { class: 'facts' }, pairs.filter(Boolean).flatMap(([k, v]) =>
    [el('dt', null, k), el('dd', null, v instanceof Node ? v : fmt(v))]));
}
