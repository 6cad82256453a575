// Drives `leafe view` in Debian's chromium through playwright-core.
// Run by tests/it/view.rs, which starts the server over a store it built
// and writes what SQL says the pages must show to $VIEW_EXPECT:
//   { url, runs: [ids], tree: {run, task, episodes, marks: [[source, leaf, t]…]},
//     llm: {run, episode, t}, branch: {run, episode}, hostile: {run, task, episode},
//     payloads: [strings that must appear as text] }
// Screenshots of every page go to $VIEW_SHOTS. Exits 1 on the first failed check.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const expect = JSON.parse(fs.readFileSync(process.env.VIEW_EXPECT, 'utf8'));
const shots = process.env.VIEW_SHOTS;
fs.mkdirSync(shots, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  console.log(`ok: ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const dialogs = [];
const violations = [];
const pageErrors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`console: ${m.text()}`); });
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__violations = (window.__violations || 0) + 1;
      console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`);
    });
  });

  const ready = async (name) => {
    await page.waitForFunction((n) => document.body.dataset.ready === n, name, { timeout: 30000 });
  };
  // Opens a route of the page and waits until that view has rendered.
  const open = async (hashRoute, name) => {
    await page.evaluate(() => { if (document.body) document.body.dataset.ready = ''; }).catch(() => {});
    await page.goto(`${expect.url}${hashRoute}`);
    await ready(name);
  };
  const shot = async (name) => {
    await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
  };
  const safe = async (where) => {
    const pwned = await page.evaluate(() => [window.__pwned, window.__violations || 0,
      document.querySelectorAll('img').length, document.querySelectorAll('script:not([src])').length]);
    check(pwned[0] === undefined, `${where}: no payload ran (window.__pwned unset)`);
    check(pwned[2] === 0 && pwned[3] === 0, `${where}: no <img> and no inline <script> in the page`);
    check(dialogs.length === 0, `${where}: no dialog opened`);
    if (pwned[1]) violations.push(`${where}: ${pwned[1]}`);
  };

  // Runs page.
  await page.goto(expect.url);
  await ready('runs');
  for (const r of expect.runs) {
    check(await page.locator(`tr[data-run="${r}"]`).count() === 1, `runs page lists ${r}`);
  }
  await shot('runs');

  // runs → tasks → tree, by clicks.
  const t = expect.tree;
  await page.locator(`tr[data-run="${t.run}"] a`).first().click();
  await ready('tasks');
  await shot('tasks');
  // The task may be on a later page: filter to it with the free condition.
  if (await page.locator(`tr[data-task="${t.task}"]`).count() === 0) {
    await page.fill('input[name=where]', `task_id = '${t.task}'`);
    await page.click('form.filters button[type=submit]');
    await page.waitForSelector(`tr[data-task="${t.task}"]`);
  }
  await page.locator(`tr[data-task="${t.task}"] a`).first().click();
  await ready('tree');
  const nodes = await page.locator('svg.tree g.node').count();
  check(nodes === t.episodes, `tree has ${t.episodes} episodes as SQL counts (drawn: ${nodes})`);
  const marks = await page.locator('svg.tree rect.mark').evaluateAll((rs) =>
    rs.map((r) => [r.dataset.source, Number(r.dataset.leaf), Number(r.dataset.t)]));
  const key = (m) => m.join('/');
  const got = new Set(marks.map(key));
  const want = new Set(t.marks.map(key));
  check(got.size === want.size && [...want].every((m) => got.has(m)),
    `marked training steps are the ${want.size} rows counterfactual_pairs.sql and rehearsal.sql select (drawn: ${got.size})`);
  check(want.size > 0, 'the tree has training steps to mark');
  await shot('tree');

  // tree → episode → step.
  const branchNode = page.locator(`svg.tree g.node[data-episode="${expect.branch.episode}"]`);
  await branchNode.click();
  await page.waitForFunction((e) => location.hash.includes(`episode=${e}`), expect.branch.episode);
  await page.waitForSelector('aside.panel h2');
  await shot('tree-selected');
  await page.locator('aside.panel a', { hasText: 'open its steps' }).click();
  await ready('episode');
  const first = await page.locator('.step-detail h2').textContent();
  await page.keyboard.press('ArrowRight');
  const second = await page.locator('.step-detail h2').textContent();
  check(first !== second, `the right arrow moves to the next step (${first} → ${second})`);
  check(/[?&]t=\d+/.test(await page.evaluate(() => location.hash)), 'the step is in the URL');
  await shot('episode');

  // A deep link survives a reload; back returns to the tree.
  const deep = page.url();
  await page.reload();
  await ready('episode');
  check(await page.locator('.step-detail h2').textContent() === second, `reloading ${deep} shows the same step`);
  await page.goBack();
  await page.waitForFunction(() => location.hash.startsWith('#/tree'));
  await ready('tree');
  check(true, 'the back button returns to the tree');

  // Branch beside its parent.
  await open(`#/beside?run=${encodeURIComponent(expect.branch.run)}&episode=${expect.branch.episode}`, 'beside');
  check(await page.locator('.side-by-side .card.diverge').count() >= 1, 'beside: the first divergent step is shown side by side');
  await shot('beside');

  // An LLM step shows its llm_calls row.
  const l = expect.llm;
  await open(`#/episode?run=${encodeURIComponent(l.run)}&episode=${l.episode}&t=${l.t}`, 'episode');
  await page.waitForSelector('.llm h3');
  check((await page.locator('.llm').textContent()).includes('raw completion'), 'an LLM step shows its call');
  await shot('episode-llm');

  // Failure patterns, sortable, with the reflections behind a row.
  await open(`#/patterns?runs=%25`, 'patterns');
  check(await page.locator('section.pattern svg.chart').count() >= 1, 'patterns: charts drawn');
  await page.locator('section.pattern[data-section=categories] th', { hasText: 'reflections' }).click();
  await page.locator('section.pattern[data-section=categories] tr.clickable').first().click();
  await page.waitForSelector('section.pattern[data-section=categories] .drill table');
  await shot('patterns');

  // Compare one task across two runs.
  await open(`#/compare?task=${encodeURIComponent(t.task)}&a=${encodeURIComponent(t.run)}&b=${encodeURIComponent(expect.compare_with)}`, 'compare');
  await shot('compare');

  // A free condition that is not a condition is refused in the page.
  await open(`#/tasks?run=${encodeURIComponent(t.run)}&where=${encodeURIComponent('1=1; DROP TABLE episodes')}`, 'tasks');
  check(await page.locator('.error').count() === 1, 'a statement as a filter is refused with a message');
  check((await page.locator('.error').textContent()).includes('400'), 'the refusal carries HTTP 400');

  // Hostile text: shown as text, never run.
  const h = expect.hostile;
  for (const [route, name] of [
    [`#/tasks?run=${encodeURIComponent(h.run)}`, 'tasks'],
    [`#/tree?run=${encodeURIComponent(h.run)}&task=${encodeURIComponent(h.task)}&episode=${h.episode}`, 'tree'],
    [`#/episode?run=${encodeURIComponent(h.run)}&episode=${h.episode}`, 'episode'],
    [`#/beside?run=${encodeURIComponent(h.run)}&episode=${h.episode}`, 'beside'],
    [`#/patterns?runs=${encodeURIComponent(h.run)}`, 'patterns'],
  ]) {
    await open(route, name);
    if (name === 'episode') {
      for (let i = 0; i < 6; i++) {
        await page.keyboard.press('ArrowRight');
        await page.waitForTimeout(150);
      }
      await page.locator('details.messages').evaluateAll((ds) => ds.forEach((d) => { d.open = true; }));
    }
    if (name === 'patterns') {
      await page.locator('section.pattern[data-section=categories] tr.clickable').first().click();
      await page.waitForSelector('.drill table');
    }
    await page.waitForTimeout(300);
    await safe(`hostile ${name}`);
    await shot(`hostile-${name}`);
  }
  await open(`#/episode?run=${encodeURIComponent(h.run)}&episode=${h.episode}`, 'episode');
  await page.waitForTimeout(500);
  const text = await page.evaluate(() => document.body.innerText);
  const shown = expect.payloads.filter((p) => text.includes(p));
  check(shown.length >= 1, `the payloads are shown as text (${shown.length} of ${expect.payloads.length} on the episode page)`);
  await safe('hostile end');
  check(violations.length === 0, `no Content-Security-Policy violation (${violations.join('; ')})`);
  check(pageErrors.length === 0, `no script error in the page (${pageErrors.join('; ')})`);
  console.log('all browser checks passed');
} catch (e) {
  console.error(String(e.stack || e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
