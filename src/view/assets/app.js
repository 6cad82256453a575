// leafe view: the page. Each view is a route in the URL's fragment
// (`#/tree?run=…&task=…`), so every view can be reloaded, shared and left
// with the back button. Data comes from /api/… (served) or data/… (a static
// export); both hold the rows of the same query files.

import { el, svg, link, route, clear, fmt, table, barChart, pre, facts } from './dom.js';
import { renderTree, legend, outcomeOf, OUTCOME_TEXT } from './tree.js';

const STATIC = document.querySelector('meta[name="leafe-mode"]')?.content === 'static';
const main = document.getElementById('main');
const crumbs = document.getElementById('crumbs');

// ---------------------------------------------------------------- data

function hex(s) {
  return Array.from(new TextEncoder().encode(String(s)), (b) => b.toString(16).padStart(2, '0')).join('');
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function fetchJson(url) {
  let r;
  try {
    r = await fetch(url, { credentials: 'same-origin' });
  } catch (e) {
    throw new ApiError(0, `the server does not answer (${e.message}); is leafe view still running?`);
  }
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) throw new ApiError(r.status, body?.error || `${url}: HTTP ${r.status}`);
  return body;
}

const staticCache = new Map();
async function staticJson(path) {
  if (!staticCache.has(path)) staticCache.set(path, fetchJson(path).catch((e) => {
    staticCache.delete(path);
    if (e.status === 404) throw new ApiError(404, 'not in this export (it holds the runs it was made for)');
    throw e;
  }));
  return staticCache.get(path);
}

// Tasks of a static export: filtered, sorted and paged here, as the server would.
function staticTasks(all, p) {
  if (p.where) throw new ApiError(400, 'a free condition needs the server (leafe view); this is a static export');
  let rows = all.rows.filter((r) =>
    (!p.outcome || p.outcome === 'any' || r.outcome === p.outcome) &&
    (!p.min_depth || r.max_depth >= Number(p.min_depth)) &&
    (!p.category || p.category === 'any' || r.first_category === p.category || r.categories > 1));
  const key = p.sort || 'task_id';
  const dir = p.dir === 'desc' ? -1 : 1;
  rows = rows.slice().sort((a, b) => (a[key] < b[key] ? -dir : a[key] > b[key] ? dir : 0) ||
    (a.task_id < b.task_id ? -1 : 1));
  const size = Number(p.page_size || 50);
  const page = Number(p.page || 0);
  return { run: all.run, rows: rows.slice(page * size, page * size + size), page, page_size: size,
    more: rows.length > (page + 1) * size, total: rows.length, query: all.query };
}

async function api(endpoint, p = {}) {
  if (!STATIC) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(p)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    return fetchJson(`api/${endpoint}?${q}`);
  }
  switch (endpoint) {
    case 'runs': return staticJson('data/runs.json');
    case 'patterns': return staticJson('data/patterns.json');
    case 'tasks': return staticTasks(await staticJson(`data/tasks/${hex(p.run)}.json`), p);
    case 'tree': return staticJson(`data/tree/${hex(p.run)}/${hex(p.task)}.json`);
    case 'episode': return staticJson(`data/episode/${hex(p.run)}/${Number(p.episode)}.json`);
    case 'steps': {
      const all = await staticJson(`data/steps/${hex(p.run)}/${Number(p.episode)}.json`);
      const from = Number(p.from_t || 0);
      const rows = all.rows.filter((s) => s.t >= from);
      const limit = Number(p.limit || 200);
      return { ...all, rows: rows.slice(0, limit), more: rows.length > limit };
    }
    case 'llm_call': return staticJson(`data/llm_call/${hex(p.run)}/${Number(p.call)}.json`);
    case 'report': return staticJson(`data/report/${hex(p.run)}.json`);
    case 'reflections': {
      const all = await staticJson('data/reflections.json');
      return { ...all, rows: all.rows.filter((r) =>
        (!p.category || r.category === p.category) && (!p.action || r.critical_action === p.action)) };
    }
    default: throw new ApiError(404, `no ${endpoint} in a static export`);
  }
}

// ---------------------------------------------------------------- routing

function currentRoute() {
  const h = location.hash.replace(/^#\/?/, '');
  const [page, query] = h.split('?');
  return { page: page || 'runs', params: Object.fromEntries(new URLSearchParams(query || '')) };
}

function go(page, params) {
  location.hash = route(page, params);
}

function setCrumbs(...parts) {
  clear(crumbs);
  crumbs.appendChild(link('runs', {}, 'runs'));
  for (const p of parts) crumbs.append(' › ', p);
}

function errorBox(e) {
  return el('div', { class: 'error', role: 'alert' },
    el('strong', null, e.status ? `Error ${e.status}: ` : 'Error: '), e.message);
}

function queryNote(...files) {
  return el('p', { class: 'query-note' }, 'rows from ', files.flat().filter(Boolean).map((f, i) =>
    [i ? ', ' : '', el('code', null, f)]));
}

let keyHandler = null;
function onKeys(fn) { keyHandler = fn; }
document.addEventListener('keydown', (e) => {
  if (!keyHandler) return;
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement ||
    e.target instanceof HTMLSelectElement) return;
  keyHandler(e);
});

const pages = { runs: runsPage, tasks: tasksPage, tree: treePage, episode: episodePage,
  beside: besidePage, compare: comparePage, patterns: patternsPage, report: reportPage };

let renderId = 0;
async function render() {
  const id = ++renderId;
  const { page, params } = currentRoute();
  onKeys(null);
  document.body.dataset.ready = '';
  clear(main);
  main.appendChild(el('p', { class: 'loading' }, 'loading…'));
  const fn = pages[page];
  const out = el('div', { class: 'page', 'data-page': page });
  try {
    if (!fn) throw new ApiError(404, `no view “${page}”`);
    await fn(out, params);
  } catch (e) {
    out.appendChild(errorBox(e));
  }
  if (id !== renderId) return;
  clear(main);
  main.appendChild(out);
  document.body.dataset.ready = page;
}

window.addEventListener('hashchange', render);

// ---------------------------------------------------------------- runs

async function runsPage(out) {
  setCrumbs();
  document.title = 'leafe view: runs';
  const data = await api('runs');
  const reports = new Set(data.reports || []);
  out.append(el('h1', null, 'Runs'), el('p', { class: 'muted' }, data.store ?? ''));
  const cols = [
    { key: 'run_id', label: 'run', render: (r) => link('tasks', { run: r.run_id }, r.run_id) },
    { key: 'kind' },
    { key: 'created_at', label: 'started', render: (r) => fmt(r.created_at).replace('T', ' ').slice(0, 19) },
    { key: 'tasks' },
    { key: 'solved_tasks', label: 'solved', render: (r) => `${fmt(r.solved_tasks)} (${r.tasks ? Math.round(100 * r.solved_tasks / r.tasks) : 0}%)` },
    { key: 'episodes' },
    { key: 'steps' },
    { key: 'env_steps', label: 'env steps' },
    { key: 'links', label: '', render: (r) => el('span', null,
      link('patterns', { runs: r.run_id }, 'failure patterns'),
      reports.has(r.run_id) ? [' · ', link('report', { run: r.run_id }, 'experiment report')] : null) },
    { key: 'config', label: 'config', render: (r) => configCell(r) },
  ];
  out.appendChild(table(cols, data.rows, { rowAttrs: (r) => ({ 'data-run': r.run_id }) }));
  if (data.uncommitted?.length) {
    out.append(el('h2', null, 'Not committed'), el('p', { class: 'muted' },
      'Still running, or crashed: their rows are not visible until they commit (leafe gc deletes crashed ones).'),
    table([{ key: 'run_id', label: 'run' }, { key: 'kind' },
      { key: 'created_at_us', label: 'started', render: (r) => new Date(r.created_at_us / 1000).toISOString().slice(0, 19).replace('T', ' ') },
      { key: 'state', label: '', render: () => el('span', { class: 'badge warn' }, 'uncommitted') }], data.uncommitted));
  }
  out.append(el('p', null, link('patterns', { runs: '%' }, 'Failure patterns of all runs'), ' · ',
    el('span', { class: 'muted' }, 'compare a task across runs from its tree')));
  out.appendChild(queryNote(data.query));
}

function configCell(r) {
  if (!r.config_json) return '–';
  let text = r.config_json;
  try { text = JSON.stringify(JSON.parse(r.config_json), null, 2); } catch { /* as stored */ }
  return el('details', null, el('summary', null, 'config'), pre(text),
    r.command_line ? pre(r.command_line) : null);
}

// ---------------------------------------------------------------- tasks

async function tasksPage(out, p) {
  const run = p.run;
  if (!run) throw new ApiError(400, 'which run? (tasks?run=…)');
  setCrumbs(link('tasks', { run }, run));
  document.title = `leafe view: ${run}`;
  const params = { run, outcome: p.outcome, category: p.category, min_depth: p.min_depth,
    where: p.where, sort: p.sort || 'task_id', dir: p.dir || 'asc', page: p.page || 0, page_size: 50 };
  out.appendChild(el('h1', null, 'Tasks of ', el('code', null, run)));
  const form = filterForm(p);
  out.appendChild(form);
  let data;
  try {
    data = await api('tasks', params);
  } catch (e) {
    out.appendChild(errorBox(e));
    return;
  }
  const navigate = (changes) => go('tasks', { ...p, ...changes });
  out.appendChild(el('p', { class: 'muted' }, `${fmt(data.total)} tasks match`,
    data.where ? [' the condition ', el('code', null, data.where)] : null,
    '. Outcome: solved by the first attempt (root), only after a rollback, unsolved, or an environment error.'));
  const cols = [
    { key: 'task_id', label: 'task', render: (r) => link('tree', { run, task: r.task_id }, r.task_id) },
    { key: 'outcome', render: (r) => el('span', { class: `badge ${r.outcome}` }, outcomeLabel(r.outcome)) },
    { key: 'episodes' }, { key: 'branches' }, { key: 'max_depth', label: 'depth' },
    { key: 'steps' }, { key: 'env_steps', label: 'env steps' }, { key: 'reflections' },
    { key: 'first_category', label: 'category', render: (r) => (r.first_category ? r.first_category + (r.categories > 1 ? ` +${r.categories - 1}` : '') : '–') },
  ];
  out.appendChild(table(cols, data.rows, {
    sort: params.sort, dir: params.dir,
    onSort: (key) => navigate({ sort: key, dir: params.sort === key && params.dir === 'asc' ? 'desc' : 'asc', page: 0 }),
    rowAttrs: (r) => ({ 'data-task': r.task_id }),
  }));
  const page = Number(params.page);
  out.appendChild(el('div', { class: 'pager' },
    page > 0 ? el('button', { on: { click: () => navigate({ page: page - 1 }) } }, '← previous') : null,
    ` page ${page + 1} of ${Math.max(1, Math.ceil(data.total / data.page_size))} `,
    data.more ? el('button', { on: { click: () => navigate({ page: page + 1 }) } }, 'next →') : null));
  out.appendChild(queryNote(data.query, 'queries/view_episode_filter.sql'));
}

function outcomeLabel(o) {
  return { root: 'solved first try', rollback: 'solved after rollback', unsolved: 'unsolved', env_error: 'env error' }[o] || o;
}

function filterForm(p) {
  const outcome = el('select', { name: 'outcome' }, ['any', 'root', 'rollback', 'unsolved', 'env_error'].map((o) =>
    el('option', { value: o, selected: (p.outcome || 'any') === o ? 'selected' : null }, o === 'any' ? 'any outcome' : outcomeLabel(o))));
  const category = el('input', { name: 'category', placeholder: 'reflection category', value: p.category || '' });
  const depth = el('input', { name: 'min_depth', type: 'number', min: 0, placeholder: 'min depth', value: p.min_depth || '' });
  const where = el('input', { name: 'where', class: 'where', placeholder: 'SQL condition on episodes, e.g. depth >= 2 AND NOT success', value: p.where || '' });
  const form = el('form', { class: 'filters', on: { submit: (e) => {
    e.preventDefault();
    go('tasks', { run: p.run, outcome: outcome.value === 'any' ? '' : outcome.value, category: category.value.trim(),
      min_depth: depth.value, where: where.value.trim(), sort: p.sort, dir: p.dir });
  } } }, outcome, category, depth, where, el('button', { type: 'submit' }, 'filter'));
  return form;
}

// ---------------------------------------------------------------- tree

async function treePage(out, p) {
  const { run, task } = p;
  if (!run || !task) throw new ApiError(400, 'which run and task? (tree?run=…&task=…)');
  setCrumbs(link('tasks', { run }, run), link('tree', { run, task }, `task ${task}`));
  document.title = `leafe view: ${task}`;
  const data = await api('tree', { run, task });
  const nodes = data.nodes;
  const solved = nodes.some((n) => n.success);
  const first = nodes.some((n) => n.success && n.origin !== 'branch');
  out.appendChild(el('h1', null, 'Task ', el('code', null, task), ' in ', el('code', null, run)));
  out.appendChild(el('p', { class: 'summary' },
    `${nodes.length} episodes, ${nodes.filter((n) => n.origin === 'branch').length} branches, ` +
    `deepest ${Math.max(...nodes.map((n) => n.depth))}: `,
    el('strong', null, first ? 'solved by the first attempt' : solved ? 'solved after a rollback' : 'not solved'),
    `. ${(data.marks || []).length} step(s) of it are training data.`,
    data.truncated ? ' Only the first 2,000 episodes are drawn.' : ''));
  out.appendChild(el('p', { class: 'muted' },
    'Each row is one episode (rollout). Its bar covers the steps it took itself; a branch starts where its parent was rolled back to (tau, the dot) after the reflection written on its row. Click a row for details.'));
  out.appendChild(legend());
  const panel = el('aside', { class: 'panel' });
  const selected = p.episode ? Number(p.episode) : null;
  const draw = () => renderTree(data, {
    selected,
    onSelect: (n) => go('tree', { run, task, episode: n.episode_id }),
    width: Math.min(1400, Math.max(900, main.clientWidth - 20)),
  });
  out.appendChild(el('div', { class: 'tree-wrap' }, draw()));
  const chosen = nodes.find((n) => n.episode_id === selected);
  if (chosen) nodePanel(panel, run, chosen, data);
  else panel.appendChild(el('p', { class: 'muted' }, 'Select an episode to see its reflection and open its steps.'));
  out.appendChild(panel);
  out.appendChild(compareForm(run, task));
  out.appendChild(queryNote(data.queries));
  onKeys((e) => {
    const ids = nodes.map((n) => n.episode_id);
    const i = ids.indexOf(selected);
    if (e.key === 'ArrowDown' || e.key === 'j') go('tree', { run, task, episode: ids[Math.min(ids.length - 1, i + 1)] });
    if (e.key === 'ArrowUp' || e.key === 'k') go('tree', { run, task, episode: ids[Math.max(0, i - 1)] });
    if (e.key === 'Enter' && chosen) go('episode', { run, episode: chosen.episode_id });
  });
}

function nodePanel(panel, run, n, data) {
  const outcome = outcomeOf(n);
  const marks = (data.marks || []).filter((m) => m.episode_id === n.episode_id);
  panel.append(el('h2', null, `Episode #${n.episode_id} `, el('span', { class: `badge ${outcome}` }, OUTCOME_TEXT[outcome])),
    el('p', null, link('episode', { run, episode: n.episode_id, t: n.tau ?? 0 }, 'open its steps →'),
      n.parent_episode_id !== null ? [' · ', link('beside', { run, episode: n.episode_id }, 'beside its parent')] : null),
    facts([
      ['origin', n.origin], ['status', n.status], ['depth', n.depth], ['length (with prefix)', n.length],
      ['env steps', n.interaction_cost], ['return', n.episode_return], ['policy', n.policy],
      ['experience in context', n.experience_in_context],
      n.parent_episode_id !== null ? ['parent', link('tree', { run, task: data.task, episode: n.parent_episode_id }, `#${n.parent_episode_id}`)] : null,
      n.tau !== null ? ['tau (rolled back to step)', n.tau] : null,
      ['training steps', marks.length ? markRanges(marks) : 'none'],
    ]));
  if (n.origin === 'branch') {
    panel.append(el('h3', null, 'The reflection it was sampled under'), facts([
      ['category', n.category], ['critical action', n.critical_action], ['noticed at step', n.trigger_step],
      ['reflector', n.reflector], ['written by an LLM', n.by_llm],
    ]), el('h4', null, 'diagnosis'), pre(n.diagnosis), el('h4', null, 'fix'), pre(n.fix));
  }
}

// "counterfactual: t 2–9, 12; rehearsal: t 0–9" for a list of marks.
function markRanges(marks) {
  const parts = [];
  for (const source of ['counterfactual', 'rehearsal']) {
    const ts = [...new Set(marks.filter((m) => m.source === source).map((m) => m.t))].sort((a, b) => a - b);
    if (!ts.length) continue;
    const ranges = [];
    let start = ts[0];
    for (let i = 1; i <= ts.length; i++) {
      if (i === ts.length || ts[i] !== ts[i - 1] + 1) {
        ranges.push(start === ts[i - 1] ? `${start}` : `${start}–${ts[i - 1]}`);
        start = ts[i];
      }
    }
    parts.push(`${source}: t ${ranges.join(', ')} (${ts.length} steps)`);
  }
  return parts.join('; ');
}

function compareForm(run, task) {
  const input = el('input', { name: 'other', placeholder: 'another run id' });
  return el('form', { class: 'filters', on: { submit: (e) => {
    e.preventDefault();
    if (input.value.trim()) go('compare', { task, a: run, b: input.value.trim() });
  } } }, 'Compare this task with run ', input, el('button', { type: 'submit' }, 'compare'));
}

// ---------------------------------------------------------------- episode

async function episodePage(out, p) {
  const run = p.run;
  const episode = Number(p.episode);
  if (!run || !Number.isInteger(episode)) throw new ApiError(400, 'which run and episode? (episode?run=…&episode=N)');
  const data = await api('episode', { run, episode });
  const e = data.episode;
  setCrumbs(link('tasks', { run }, run), link('tree', { run, task: e.task_id, episode }, `task ${e.task_id}`),
    link('episode', { run, episode }, `episode #${episode}`));
  document.title = `leafe view: episode ${episode}`;
  const from = e.tau ?? 0;
  const stepsData = await api('steps', { run, episode, from_t: Math.max(from, Number(p.from_t || 0)), limit: 500 });
  const steps = stepsData.rows;
  let tree = null;
  try { tree = await api('tree', { run, task: e.task_id }); } catch { /* marks are optional */ }
  const marks = new Map();
  for (const m of tree?.marks || []) if (m.episode_id === episode) marks.set(m.t, [...(marks.get(m.t) || []), m.source]);
  const reflectionsAt = new Map();
  for (const r of data.reflections) reflectionsAt.set(r.tau, [...(reflectionsAt.get(r.tau) || []), r]);
  const outcome = outcomeOf(e);
  out.append(el('h1', null, `Episode #${episode} `, el('span', { class: `badge ${outcome}` }, OUTCOME_TEXT[outcome])),
    facts([['task', link('tree', { run, task: e.task_id, episode }, e.task_id)], ['origin', e.origin], ['status', e.status],
      ['depth', e.depth], ['policy', e.policy], ['length (with prefix)', e.length], ['env steps', e.interaction_cost],
      ['experience in context', e.experience_in_context],
      e.parent_episode_id !== null ? ['parent', link('episode', { run, episode: e.parent_episode_id, t: e.tau }, `#${e.parent_episode_id}`)] : null,
      e.tau !== null ? ['branches off its parent at step', e.tau] : null]));
  if (e.origin === 'branch') {
    out.append(el('div', { class: 'experience' }, el('h3', null, `Experience in context (reflection on #${e.parent_episode_id})`),
      facts([['category', e.category], ['critical action', e.critical_action], ['reflector', e.reflector]]),
      el('h4', null, 'diagnosis'), pre(e.diagnosis), el('h4', null, 'fix'), pre(e.fix),
      el('p', null, link('beside', { run, episode }, 'see it beside its parent →'))));
  }
  if (!steps.length) {
    out.appendChild(el('p', { class: 'muted' }, 'This episode stored no steps of its own.'));
    return;
  }
  let t = Number(p.t ?? steps[0].t);
  if (!steps.some((s) => s.t === t)) t = steps[0].t;
  const strip = el('div', { class: 'strip', role: 'list' });
  const detail = el('div', { class: 'step-detail' });
  out.append(el('p', { class: 'muted' }, `Steps ${steps[0].t}–${steps[steps.length - 1].t}` +
    (from > 0 ? ` (steps before ${from} are its parent's)` : '') + '. Keys: ← → or j k step, Home End, u tree, b beside parent.'),
  strip, detail);
  if (stepsData.more) out.appendChild(el('p', null, link('episode', { run, episode, from_t: steps[steps.length - 1].t + 1 }, 'later steps →')));
  const show = (tt, push) => {
    t = tt;
    if (push) history.replaceState(null, '', route('episode', { ...p, t }));
    for (const c of strip.children) c.classList.toggle('current', Number(c.dataset.t) === t);
    clear(detail);
    const s = steps.find((x) => x.t === t);
    stepDetail(detail, run, s, marks.get(t) || [], reflectionsAt.get(t) || []);
  };
  for (const s of steps) {
    const cls = ['chip', s.mistake ? 'mistake' : '', marks.has(s.t) ? 'marked' : '', reflectionsAt.has(s.t) ? 'tau' : ''].join(' ');
    strip.appendChild(el('button', { class: cls, 'data-t': s.t, title: `step ${s.t}: ${s.action_text ?? ''}`,
      on: { click: () => show(s.t, true) } }, String(s.t)));
  }
  show(t, false);
  onKeys((ev) => {
    const ts = steps.map((s) => s.t);
    const i = ts.indexOf(t);
    if (ev.key === 'ArrowRight' || ev.key === 'j') show(ts[Math.min(ts.length - 1, i + 1)], true);
    else if (ev.key === 'ArrowLeft' || ev.key === 'k') show(ts[Math.max(0, i - 1)], true);
    else if (ev.key === 'Home') show(ts[0], true);
    else if (ev.key === 'End') show(ts[ts.length - 1], true);
    else if (ev.key === 'u') go('tree', { run, task: e.task_id, episode });
    else if (ev.key === 'b' && e.parent_episode_id !== null) go('beside', { run, episode });
    else return;
    ev.preventDefault();
  });
}

function stepDetail(box, run, s, marks, reflections) {
  box.append(el('h2', null, `Step ${s.t}`),
    el('div', { class: 'obs-wrap' }, el('h4', null, 'observation'), pre(s.observation, 'observation')),
    facts([['action', s.action_text ?? s.action], ['reward', s.reward], ['done', s.done], ['feedback', s.feedback],
      ['mistake', s.mistake], ['log-probability', s.log_prob], ['experience in context', s.experience_in_context],
      ['training data', marks.length ? marks.join(', ') : 'no']]));
  for (const r of reflections) {
    box.appendChild(el('div', { class: 'reflection-at' },
      el('h3', null, `Reflection: the critical step is this one (tau = ${r.tau})`),
      facts([['category', r.category], ['critical action', r.critical_action], ['noticed at step', r.trigger_step],
        ['reflector', r.reflector], ['by an LLM', r.by_llm], ['branches', r.branches], ['a branch succeeded', r.fixed]]),
      el('h4', null, 'diagnosis'), pre(r.diagnosis), el('h4', null, 'fix'), pre(r.fix)));
  }
  if (s.llm_call_id !== null && s.llm_call_id !== undefined) {
    const holder = el('div', { class: 'llm' }, el('p', { class: 'loading' }, 'LLM call…'));
    box.appendChild(holder);
    api('llm_call', { run, call: s.llm_call_id }).then((c) => llmCall(clear(holder), c), (e) => clear(holder).appendChild(errorBox(e)));
  }
}

function llmCall(box, c) {
  box.appendChild(el('h3', null, `LLM call ${c.call}`));
  for (const a of c.rows) {
    let messages = [];
    try { messages = JSON.parse(a.messages); } catch { messages = [{ role: '?', content: a.messages }]; }
    box.append(el('h4', null, `attempt ${a.attempt} (${a.kind}, ${a.model})`),
      facts([['valid', a.valid], ['why not', a.error], ['parsed action', a.parsed], ['prompt tokens', a.prompt_tokens],
        ['completion tokens', a.completion_tokens], ['latency ms', a.latency_ms], ['retries', a.retries],
        ['from the replay record', a.cached], ['log-probability', a.log_prob], ['seed', a.seed]]),
      el('details', { class: 'messages' }, el('summary', null, `${Array.isArray(messages) ? messages.length : 0} messages sent`),
        (Array.isArray(messages) ? messages : []).map((m) => el('div', { class: 'msg' },
          el('span', { class: 'role' }, String(m?.role ?? '?')), pre(typeof m?.content === 'string' ? m.content : JSON.stringify(m?.content)))),
      ),
      el('h4', null, 'raw completion'), pre(a.completion, 'completion'));
  }
}

// ---------------------------------------------------------------- beside

async function besidePage(out, p) {
  const run = p.run;
  const episode = Number(p.episode);
  const b = (await api('episode', { run, episode })).episode;
  if (b.parent_episode_id === null) throw new ApiError(400, `episode ${episode} is a ${b.origin}: it has no parent`);
  const a = (await api('episode', { run, episode: b.parent_episode_id })).episode;
  setCrumbs(link('tasks', { run }, run), link('tree', { run, task: b.task_id, episode }, `task ${b.task_id}`),
    link('beside', { run, episode }, `#${episode} beside #${a.episode_id}`));
  const tau = b.tau;
  const [pa, pb] = await Promise.all([
    api('steps', { run, episode: a.episode_id, from_t: 0, limit: 500 }),
    api('steps', { run, episode, from_t: tau, limit: 500 }),
  ]);
  out.append(el('h1', null, `Branch #${episode} beside its parent #${a.episode_id}`),
    el('p', null, `The branch was rolled back to step ${tau} and sampled again with the reflection in context: `,
      el('strong', null, b.category ?? ''), b.critical_action ? ` (the mistake: ${b.critical_action})` : ''),
    el('div', { class: 'experience' }, el('h4', null, 'fix'), pre(b.fix)));
  const prefix = pa.rows.filter((s) => s.t < tau);
  out.appendChild(el('details', { class: 'prefix-fold' }, el('summary', null,
    `steps 0–${tau - 1}: shared by both (${prefix.length} stored in the parent; earlier ones are its ancestors')`),
  el('div', { class: 'cols' }, prefix.map((s) => stepCard(s, run)))));
  const pRest = pa.rows.filter((s) => s.t >= tau);
  const bRest = pb.rows;
  const head = (ep, label) => el('h3', null, label, ' ', link('episode', { run, episode: ep.episode_id, t: tau }, `#${ep.episode_id}`), ' ',
    el('span', { class: `badge ${outcomeOf(ep)}` }, OUTCOME_TEXT[outcomeOf(ep)]));
  out.appendChild(el('div', { class: 'side-by-side' },
    el('div', { class: 'col' }, head(a, 'parent'), el('p', { class: 'muted' }, 'first divergent step'), pRest[0] ? stepCard(pRest[0], run, 'diverge') : '–',
      el('p', { class: 'muted' }, 'then'), pRest.slice(1).map((s) => stepCard(s, run))),
    el('div', { class: 'col' }, head(b, 'branch'), el('p', { class: 'muted' }, 'first divergent step'), bRest[0] ? stepCard(bRest[0], run, 'diverge') : '–',
      el('p', { class: 'muted' }, 'then'), bRest.slice(1).map((s) => stepCard(s, run)))));
}

function stepCard(s, run, cls) {
  return el('div', { class: 'card ' + (cls || '') },
    el('div', { class: 'card-head' }, `t ${s.t}: `, el('strong', null, s.action_text ?? String(s.action)), ` → ${fmt(s.reward)}`,
      s.mistake ? el('span', { class: 'badge failure' }, s.mistake) : null),
    pre(s.observation, 'observation small'), s.feedback ? el('div', { class: 'feedback' }, s.feedback) : null);
}

// ---------------------------------------------------------------- compare

async function comparePage(out, p) {
  const { task, a, b } = p;
  if (!task || !a || !b) throw new ApiError(400, 'compare needs task, a and b (two runs)');
  setCrumbs(link('tree', { run: a, task }, `task ${task}`), `compare ${a} and ${b}`);
  out.appendChild(el('h1', null, 'Task ', el('code', null, task), ' in two runs'));
  const cols = el('div', { class: 'side-by-side' });
  out.appendChild(cols);
  for (const run of [a, b]) {
    const col = el('div', { class: 'col' }, el('h2', null, link('tree', { run, task }, run)));
    cols.appendChild(col);
    try {
      const data = await api('tree', { run, task });
      const ok = data.nodes.filter((n) => n.success).length;
      const first = data.nodes.some((n) => n.success && n.origin !== 'branch');
      col.append(el('p', { class: 'summary' }, el('strong', null, first ? 'solved by the first attempt' : ok ? 'solved after a rollback' : 'not solved'),
        `: ${ok} of ${data.nodes.length} episodes succeeded; policies ${[...new Set(data.nodes.map((n) => n.policy))].join(', ')}`),
      el('div', { class: 'tree-wrap' }, renderTree(data, { width: 640, onSelect: (n) => go('episode', { run, episode: n.episode_id }) })));
    } catch (e) {
      col.appendChild(errorBox(e));
    }
  }
}

// ---------------------------------------------------------------- patterns

async function patternsPage(out, p) {
  const runs = p.runs || '%';
  setCrumbs(link('patterns', { runs }, `failure patterns of ${runs}`));
  document.title = 'leafe view: failure patterns';
  const data = await api('patterns', { runs });
  out.appendChild(el('h1', null, 'Failure patterns of runs ', el('code', null, runs)));
  out.appendChild(el('p', { class: 'muted' }, 'The tables of leafe report. Click a column to sort; click a row of the first two tables for the reflections behind it.'));
  for (const s of data.sections) {
    const sec = el('section', { class: 'pattern', 'data-section': s.name });
    out.appendChild(sec);
    const state = { sort: null, dir: 'desc' };
    const drill = el('div', { class: 'drill' });
    const draw = () => {
      clear(sec);
      let rows = s.rows.slice();
      if (state.sort) {
        const k = state.sort;
        const d = state.dir === 'desc' ? -1 : 1;
        rows.sort((x, y) => (x[k] < y[k] ? -d : x[k] > y[k] ? d : 0));
      }
      sec.append(el('h2', null, s.title));
      if (s.chart && rows.length) sec.appendChild(barChart(rows, s.chart.label, s.chart.value));
      const clickable = s.name === 'categories' || s.name === 'actions';
      sec.appendChild(table(s.columns.map((c) => ({ key: c })), rows, {
        sort: state.sort, dir: state.dir,
        onSort: (k) => { state.dir = state.sort === k && state.dir === 'desc' ? 'asc' : 'desc'; state.sort = k; draw(); },
        rowAttrs: clickable ? (r) => ({ class: 'clickable', on: { click: () => drillDown(drill, runs, r) } }) : null,
      }));
      if (!rows.length) sec.appendChild(el('p', { class: 'muted' }, 'no rows'));
      sec.appendChild(drill);
    };
    draw();
  }
  out.appendChild(queryNote(data.queries));
}

async function drillDown(box, runs, row) {
  clear(box).appendChild(el('p', { class: 'loading' }, 'reflections…'));
  try {
    const data = await api('reflections', { runs, category: row.category, action: row.critical_action ?? '' });
    clear(box).append(el('h3', null, `Reflections: ${row.category}${row.critical_action ? ' · ' + row.critical_action : ''} (${data.rows.length}${data.rows.length >= 200 ? '+' : ''})`),
      table([
        { key: 'run_id', label: 'run' },
        { key: 'task_id', label: 'task', render: (r) => link('tree', { run: r.run_id, task: r.task_id, episode: r.episode_id }, r.task_id) },
        { key: 'episode_id', label: 'episode', render: (r) => link('episode', { run: r.run_id, episode: r.episode_id, t: r.tau }, `#${r.episode_id}`) },
        { key: 'tau' }, { key: 'critical_action', label: 'critical action' }, { key: 'diagnosis', cls: 'wrap' },
        { key: 'fix', cls: 'wrap' }, { key: 'fixed', label: 'fixed' },
      ], data.rows));
  } catch (e) {
    clear(box).appendChild(errorBox(e));
  }
}

// ---------------------------------------------------------------- report

async function reportPage(out, p) {
  const run = p.run;
  setCrumbs(link('report', { run }, `experiment report ${run}`));
  const data = await api('report', { run });
  out.appendChild(el('h1', null, 'Experiment report ', el('code', null, run)));
  const r = data.results || {};
  const tables = Object.entries(r).filter(([, v]) => Array.isArray(v) && v.length && typeof v[0] === 'object');
  for (const [name, rows] of tables) {
    const cols = [...new Set(rows.flatMap((x) => Object.keys(x)))].filter((k) => typeof rows[0][k] !== 'object' || rows[0][k] === null);
    out.append(el('h2', null, name), table(cols.map((c) => ({ key: c })), rows));
  }
  const plots = Object.values(r).flat().concat(Object.keys(r)).filter((v) => typeof v === 'string' && v.endsWith('.svg'));
  if (!STATIC) {
    for (const f of new Set(plots)) {
      out.appendChild(el('figure', null, el('img', { src: `api/plot?run=${encodeURIComponent(run)}&file=${encodeURIComponent(f)}`, alt: f }),
        el('figcaption', null, f)));
    }
  }
  if (data.markdown) out.append(el('h2', null, 'report.md'), pre(data.markdown));
}

render();
