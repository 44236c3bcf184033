// Browser tests of the Pathway console: playwright-core driving Debian's
// /usr/bin/chromium, axe-core for WCAG 2.1 A/AA.
//
//   node tests/console/run.mjs <base-url> <screenshot-dir>
//
// <base-url> is where the console is mounted (http://127.0.0.1:PORT/console).
// The environment gives the tokens and two person references:
//   CONSOLE_TOKENS  JSON {"committee": …, "dpf_city": …, "civil_affairs": …, "education": …, "auditor": …}
//   CONSOLE_OWN_PERSON    a person of the city DPF's city
//   CONSOLE_OTHER_PERSON  a person of another city
// Run by `cargo test -p pathway-console` (tests/it/browser.rs); install with
// `npm ci --prefix tests/console` and `apt-get install -y chromium`.
// Prints one line per check and closes with "N passed, N failed"; exits 1 on
// any failure.

import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const [base, shots] = process.argv.slice(2);
if (!base || !shots) {
  console.error('usage: node tests/console/run.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const tokens = JSON.parse(process.env.CONSOLE_TOKENS || '{}');
const ownPerson = process.env.CONSOLE_OWN_PERSON;
const otherPerson = process.env.CONSOLE_OTHER_PERSON;
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
mkdirSync(shots, { recursive: true });

let passed = 0;
let failed = 0;
function check(ok, what, detail = '') {
  if (ok) {
    passed += 1;
    console.log(`ok   ${what}`);
  } else {
    failed += 1;
    console.log(`FAIL ${what}${detail ? `: ${detail}` : ''}`);
  }
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
}

/** axe-core over the page: WCAG 2.0/2.1 A and AA rules; no serious or critical violation. */
async function axe(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }),
  );
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(
    bad.length === 0,
    `axe ${name}: no serious or critical violations (${result.passes.length} rules pass)`,
    bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`).join('; '),
  );
}

async function h1(page) {
  return (await page.textContent('h1'))?.trim();
}

async function signIn(page, token) {
  await page.goto(`${base}/sign-in`);
  await page.fill('#token', token);
  await Promise.all([page.waitForURL((u) => !u.pathname.endsWith('/sign-in')), page.click('form.sign-in button[type=submit]')]);
}

async function status(page, url) {
  const response = await page.goto(url);
  return response.status();
}

/** Whether the focused element shows a focus indicator. */
async function focusVisible(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return false;
    const cs = getComputedStyle(el);
    const outline = cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 2;
    const shadow = cs.boxShadow && cs.boxShadow !== 'none';
    return outline || shadow;
  });
}

async function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    return {
      tag: el?.tagName?.toLowerCase(),
      cls: el?.className || '',
      href: el?.getAttribute?.('href') || '',
      text: (el?.textContent || '').trim().slice(0, 60),
      role: el?.getAttribute?.('role') || '',
      id: el?.id || '',
    };
  });
}

/** Presses Tab until `want(focused)` holds (at most `max` times), checking the focus is visible at each stop. */
async function tabTo(page, want, max, label) {
  let invisible = [];
  for (let i = 0; i < max; i += 1) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    if (!(await focusVisible(page))) invisible.push(`${f.tag}.${f.cls}#${f.id} "${f.text}"`);
    if (want(f)) {
      check(invisible.length === 0, `keyboard: focus visible on every stop before ${label}`, invisible.slice(0, 5).join(', '));
      return f;
    }
  }
  check(false, `keyboard: reach ${label} with Tab`, `not reached in ${max} presses`);
  return null;
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  // The console sends a strict Content-Security-Policy (no scripts); the
  // injected axe-core needs it bypassed in the test browser.
  const newPage = async () => {
    const context = await browser.newContext({ bypassCSP: true, viewport: { width: 1280, height: 900 }, locale: 'zh-CN' });
    return context.newPage();
  };

  // --- Not signed in.
  {
    const page = await newPage();
    await page.goto(`${base}/dashboard`);
    check(page.url().includes('/sign-in'), 'signed out: the dashboard sends to the sign-in page');
    check((await h1(page)) === '登录', 'sign-in page in Chinese by default');
    await axe(page, 'sign-in');
    await shot(page, '01-sign-in');
    await page.fill('#token', 'pw1.not-a-token.x');
    await page.click('form.sign-in button[type=submit]');
    check((await page.textContent('#token-error'))?.includes('令牌无效'), 'a bad token is refused with a message');
    check((await page.getAttribute('#token', 'aria-invalid')) === 'true', 'the refused field is marked invalid');
    await axe(page, 'sign-in refused');
    await page.context().close();
  }

  // --- The committee.
  {
    const page = await newPage();
    await signIn(page, tokens.committee);
    check(page.url().endsWith('/dashboard'), 'committee lands on the dashboard', page.url());
    check((await h1(page)) === '残工委指标看板', 'dashboard heading');
    const charts = await page.locator('svg[role=img]').count();
    check(charts >= 4, `dashboard has its charts (${charts})`);
    const captions = await page.locator('table caption').count();
    check(captions >= 6, `dashboard has table alternatives (${captions})`);
    check((await page.textContent('main')).includes('33,000'), 'dashboard shows the 33,000 target');
    await axe(page, 'dashboard zh');
    await shot(page, '02-committee-dashboard-zh');
    await page.click('a.lang-switch');
    check((await h1(page)) === 'Committee dashboard', 'language switch to English', await h1(page));
    check((await page.getAttribute('html', 'lang')) === 'en', 'html lang is en');
    await axe(page, 'dashboard en');
    await shot(page, '03-committee-dashboard-en');
    await page.goto(`${base}/dashboard?year=2023`);
    check((await h1(page)) === 'Committee dashboard', 'the language is remembered');
    await page.click('a.lang-switch');
    check((await page.getAttribute('html', 'lang')) === 'zh-CN', 'and switched back to Chinese');
    check((await status(page, `${base}/cases`)) === 403, 'committee: the case list is refused (403)');
    check((await h1(page)) === '无权访问', 'the 403 page says so');
    await axe(page, 'forbidden');
    await shot(page, '04-forbidden');
    await page.context().close();
  }

  // --- A city DPF.
  {
    const page = await newPage();
    await signIn(page, tokens.dpf_city);
    check(page.url().endsWith('/cases'), 'city DPF lands on the case list', page.url());
    check((await page.textContent('main')).includes('哈尔滨市'), 'the case list is Harbin\'s');
    await axe(page, 'case list');
    await shot(page, '05-dpf-case-list');
    await page.fill('#q', ownPerson.slice(0, 8));
    await page.click('form.search button[type=submit]');
    const link = page.locator(`a[href$="/cases/${ownPerson}"]`);
    check((await link.count()) === 1, 'search finds the person by reference');
    await link.click();
    check((await h1(page)) === '个案详情', 'case page opens');
    check((await page.textContent('main')).includes(ownPerson), 'case page shows the person');
    await axe(page, 'case page');
    await shot(page, '06-dpf-case-page');
    check((await status(page, `${base}/cases/${otherPerson}`)) === 403, 'another city\'s person is refused (403)');
    check((await page.textContent('main')).includes('此人不是本市居民'), 'and the page says why');
    check((await status(page, `${base}/dashboard`)) === 403, 'city DPF: the dashboard is refused');
    await page.context().close();
  }

  // --- Civil Affairs and Education.
  {
    const page = await newPage();
    await signIn(page, tokens.civil_affairs);
    check(page.url().endsWith('/phase-outs'), 'Civil Affairs lands on the phase-out calendar', page.url());
    check((await h1(page)) === '低保渐退日历', 'calendar heading');
    await axe(page, 'phase-out calendar');
    await shot(page, '07-civil-affairs-calendar');
    check((await status(page, `${base}/graduates`)) === 403, 'Civil Affairs: graduate outcomes refused');
    await page.context().close();
  }
  {
    const page = await newPage();
    await signIn(page, tokens.education);
    check((await h1(page)) === '高校毕业生去向', 'Education lands on graduate outcomes');
    await axe(page, 'graduate outcomes');
    await shot(page, '08-education-graduates');
    await page.context().close();
  }

  // --- The auditor.
  {
    const page = await newPage();
    await signIn(page, tokens.auditor);
    await page.fill('#person', ownPerson);
    await page.click('form.search button[type=submit]');
    check((await page.locator('ol.timeline > li').count()) > 0, 'auditor: the person\'s timeline has events');
    await axe(page, 'timeline');
    await shot(page, '09-auditor-timeline');
    await page.goto(`${base}/audit/verification`);
    check((await page.textContent('main')).includes('校验通过'), 'auditor: the chain verifies');
    await axe(page, 'verification');
    await shot(page, '10-auditor-verification');
    await page.context().close();
  }

  // --- Keyboard only: the committee dashboard.
  {
    const page = await newPage();
    await page.goto(`${base}/sign-in`);
    const skip = await tabTo(page, (f) => f.href === '#main', 1, 'the skip link first');
    check(skip !== null, 'keyboard: the first Tab reaches the skip link');
    await tabTo(page, (f) => f.id === 'token', 6, 'the token field');
    await page.keyboard.type(tokens.committee);
    await Promise.all([page.waitForURL((u) => u.pathname.endsWith('/dashboard')), page.keyboard.press('Enter')]);
    check(true, 'keyboard: signed in with Enter');
    await page.keyboard.press('Tab');
    check((await focused(page)).href === '#main', 'keyboard: skip link first on the dashboard');
    await page.keyboard.press('Enter');
    check((await focused(page)).id === 'main', 'keyboard: the skip link moves focus to the main content');
    await page.goto(`${base}/dashboard`);
    await tabTo(page, (f) => f.cls.includes('lang-switch'), 10, 'the language switch');
    await tabTo(page, (f) => f.href.endsWith('/dashboard?year=2023'), 40, 'a year of the city chart');
    await Promise.all([page.waitForURL((u) => u.search.includes('year=2023')), page.keyboard.press('Enter')]);
    check(page.url().includes('year=2023'), 'keyboard: Enter on a year link opens it');
    await tabTo(page, (f) => f.role === 'region', 60, 'a table alternative (scrollable region)');
    await page.context().close();
  }

  // --- Keyboard only: a case page.
  {
    const page = await newPage();
    await page.goto(`${base}/sign-in`);
    await tabTo(page, (f) => f.id === 'token', 8, 'the token field');
    await page.keyboard.type(tokens.dpf_city);
    await Promise.all([page.waitForURL((u) => u.pathname.endsWith('/cases')), page.keyboard.press('Enter')]);
    const link = await tabTo(page, (f) => /\/cases\/[0-9a-f-]{8,}$/.test(f.href), 80, 'a case link');
    if (link) {
      await Promise.all([page.waitForURL((u) => /\/cases\/[0-9a-f-]+$/.test(u.pathname)), page.keyboard.press('Enter')]);
      check((await h1(page)) === '个案详情', 'keyboard: Enter on a case link opens the case');
      await tabTo(page, (f) => f.cls.includes('lang-switch'), 10, 'the language switch on the case page');
      await Promise.all([page.waitForURL((u) => u.search.includes('lang=en')), page.keyboard.press('Enter')]);
      check((await h1(page)) === 'Case', 'keyboard: Enter on the language switch changes the language');
      await shot(page, '11-keyboard-case-page-en');
    }
    await page.context().close();
  }
} catch (e) {
  check(false, 'browser run', e?.stack || String(e));
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
