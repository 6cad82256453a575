// A task's tree drawn against the step axis: one row per episode, its bar
// covering the steps it took itself; a branch hangs from its parent's bar
// at tau (the step it was rolled back to), with the reflection's category
// and critical action on the edge. d3-hierarchy orders the rows (parent
// before children, children by tau).

import { stratify } from './vendor/d3-hierarchy.min.mjs';
import { svg, fmt } from './dom.js';

const ROW = 30;
const LABEL_W = 170;
const TOP = 44;

export function outcomeOf(n) {
  if (n.status === 'env_error') return 'env_error';
  return n.success ? 'success' : 'failure';
}

export const OUTCOME_TEXT = {
  success: 'solved',
  failure: 'failed',
  env_error: 'environment error',
};

// Rows in display order: [{node, depth, row}], the task's trees side by side
// under one virtual root.
export function orderRows(nodes) {
  const ids = new Set(nodes.map((n) => n.episode_id));
  const items = [{ episode_id: '__task', parent: null }].concat(nodes.map((n) => ({
    ...n,
    parent: n.parent_episode_id !== null && ids.has(n.parent_episode_id) ? n.parent_episode_id : '__task',
  })));
  const root = stratify().id((d) => String(d.episode_id)).parentId((d) => (d.parent === null ? null : String(d.parent)))(items);
  root.sort((a, b) => (a.data.tau ?? -1) - (b.data.tau ?? -1) ||
    (a.data.sample_index ?? 0) - (b.data.sample_index ?? 0) || a.data.episode_id - b.data.episode_id);
  const rows = [];
  root.eachBefore((h) => {
    if (h.data.episode_id !== '__task') rows.push({ node: h.data, depth: h.depth - 1 });
  });
  rows.forEach((r, i) => { r.row = i; });
  return rows;
}

function edgeText(n) {
  if (n.origin !== 'branch') return n.origin;
  const parts = [];
  if (n.category) parts.push(n.category);
  if (n.critical_action) parts.push(`mistake: ${n.critical_action}`);
  return parts.join(' · ') || 'branch';
}

// Draws the tree; onSelect(node) on a click. Returns the SVG element.
export function renderTree(data, opts = {}) {
  const rows = orderRows(data.nodes);
  const byId = new Map(rows.map((r) => [r.node.episode_id, r]));
  const maxLen = Math.max(1, ...data.nodes.map((n) => n.length || 0));
  const width = opts.width || 1100;
  const textRoom = 460;
  const px = Math.max(3, Math.min(22, Math.floor((width - LABEL_W - textRoom) / maxLen)));
  const x = (t) => LABEL_W + t * px;
  const y = (row) => TOP + row * ROW + ROW / 2;
  const height = TOP + rows.length * ROW + 16;
  const root = svg('svg', { class: 'tree', width: Math.max(width, x(maxLen) + textRoom), height,
    role: 'img', 'aria-label': `tree of ${rows.length} episodes` });

  // Step axis.
  const tickEvery = [1, 2, 5, 10, 20, 50, 100, 200, 500].find((k) => k * px >= 36) || 1000;
  root.appendChild(svg('text', { x: 4, y: 14, class: 'axis-title' }, 'episode'));
  root.appendChild(svg('text', { x: LABEL_W, y: 14, class: 'axis-title' }, 'step t →'));
  for (let t = 0; t <= maxLen; t += tickEvery) {
    root.appendChild(svg('line', { x1: x(t), x2: x(t), y1: 22, y2: height - 10, class: 'grid-line' }));
    root.appendChild(svg('text', { x: x(t), y: 34, class: 'tick', 'text-anchor': 'middle' }, String(t)));
  }

  // Marks of training steps, per episode.
  const marks = new Map();
  for (const m of data.marks || []) {
    const k = m.episode_id;
    if (!marks.has(k)) marks.set(k, []);
    marks.get(k).push(m);
  }

  // Edges first (under the bars): from the parent's bar at tau down to the
  // branch; the rollback dots go on top of the bars, last.
  const dots = [];
  for (const r of rows) {
    const n = r.node;
    const p = n.parent_episode_id !== null ? byId.get(n.parent_episode_id) : null;
    if (!p) continue;
    const tx = x(n.tau ?? 0);
    root.appendChild(svg('path', {
      d: `M${tx},${y(p.row)} L${tx},${y(r.row)}`,
      class: 'edge',
    }));
    dots.push(svg('circle', { cx: tx, cy: y(p.row), r: 4, class: 'tau-dot' },
      svg('title', null, `rolled back to step ${n.tau} of episode ${p.node.episode_id}`)));
  }

  for (const r of rows) {
    const n = r.node;
    const outcome = outcomeOf(n);
    const g = svg('g', {
      class: `node ${outcome}` + (opts.selected === n.episode_id ? ' selected' : ''),
      'data-episode': n.episode_id,
      tabindex: 0,
      on: {
        click: () => opts.onSelect && opts.onSelect(n),
        keydown: (e) => { if (e.key === 'Enter' && opts.onSelect) opts.onSelect(n); },
      },
    });
    const cy = y(r.row);
    const start = n.tau ?? 0;
    const end = Math.max(start + 1, n.length || 0);
    g.appendChild(svg('rect', { x: 0, y: cy - ROW / 2, width: Math.max(width, x(maxLen) + textRoom), height: ROW, class: 'row-bg' }));
    const indent = Math.min(r.depth, 6) * 10;
    g.appendChild(svg('text', { x: 4 + indent, y: cy + 4, class: 'node-label' },
      `#${n.episode_id} ${n.origin}${n.origin === 'branch' ? ' d' + n.depth : ''}`));
    if (start > 0) {
      // The prefix this branch shares with its parent (replayed, not its own).
      g.appendChild(svg('line', { x1: x(0), x2: x(start), y1: cy, y2: cy, class: 'prefix' }));
    }
    g.appendChild(svg('rect', { x: x(start), y: cy - 7, width: Math.max(2, (end - start) * px), height: 14, rx: 3,
      class: 'bar' },
    svg('title', null, `episode ${n.episode_id}: ${OUTCOME_TEXT[outcome]} (${n.status}), ` +
      `steps ${start}–${end - 1} its own, ${fmt(n.interaction_cost)} env steps, policy ${n.policy}`)));
    for (const m of marks.get(n.episode_id) || []) {
      const cls = m.source === 'counterfactual' ? 'mark cf' : 'mark rh';
      const my = m.source === 'counterfactual' ? cy - 12 : cy + 9;
      g.appendChild(svg('rect', { x: x(m.t) + 1, y: my, width: Math.max(2, px - 2), height: 3, class: cls,
        'data-episode': n.episode_id, 'data-t': m.t, 'data-leaf': m.leaf, 'data-source': m.source },
      svg('title', null, `step ${m.t}: trained on (${m.source === 'counterfactual' ? 'counterfactual_pairs.sql' : 'rehearsal.sql'})`)));
    }
    const after = x(end) + 8;
    g.appendChild(svg('text', { x: after, y: cy + 4, class: 'node-outcome' },
      `${outcome === 'success' ? '✓' : outcome === 'env_error' ? '⚠' : '✗'} ${OUTCOME_TEXT[outcome]}`));
    g.appendChild(svg('text', { x: after + 92, y: cy + 4, class: 'edge-label' },
      n.origin === 'branch' ? `from #${n.parent_episode_id} at t=${n.tau}: ${edgeText(n)}` : edgeText(n)));
    root.appendChild(g);
  }
  for (const d of dots) root.appendChild(d);
  return root;
}

// The legend that says what the colours and marks mean.
export function legend() {
  const root = svg('svg', { class: 'legend', width: 1150, height: 24 });
  let xx = 0;
  const item = (shape, text) => {
    root.appendChild(shape(xx));
    root.appendChild(svg('text', { x: xx + 22, y: 16, class: 'legend-text' }, text));
    xx += 34 + text.length * 7;
  };
  item((x0) => svg('rect', { x: x0, y: 6, width: 16, height: 12, rx: 3, class: 'bar legend-success' }), 'solved');
  item((x0) => svg('rect', { x: x0, y: 6, width: 16, height: 12, rx: 3, class: 'bar legend-failure' }), 'failed');
  item((x0) => svg('rect', { x: x0, y: 6, width: 16, height: 12, rx: 3, class: 'bar legend-env_error' }), 'environment error');
  item((x0) => svg('circle', { cx: x0 + 8, cy: 12, r: 4, class: 'tau-dot' }), 'rollback point tau');
  item((x0) => svg('line', { x1: x0, x2: x0 + 16, y1: 12, y2: 12, class: 'prefix' }), 'prefix shared with parent');
  item((x0) => svg('rect', { x: x0, y: 9, width: 16, height: 3, class: 'mark cf' }), 'trained on: counterfactual');
  item((x0) => svg('rect', { x: x0, y: 9, width: 16, height: 3, class: 'mark rh' }), 'trained on: rehearsal');
  return root;
}
