// Drives the comment widget in headless Chromium (run by deploy/browser-test.sh,
// which bundles it with esbuild into gen/browser-test.mjs).
// Env: PAGE_URL (the article page, already pointed at commentd),
// ARTIFACT_DIR (where the screenshot goes), CHROMIUM (browser binary),
// COMMENTD_URL, MODERATOR_TOKEN, COMMENTD_PID (the running server, which this
// script restarts once), COMMENTD_ARGS (JSON argv to restart it with),
// COMMENTD_PID_FILE (where the restarted server's pid is written).
// Prints "ok - ..." / "not ok - ..." per check; the shell script counts them.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { writeFileSync, createWriteStream } from "node:fs";
import { createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Action, CommentService, ModerationService } from "../gen/comments/v1/comments_pb";

const pageUrl = process.env.PAGE_URL;
const artifactDir = process.env.ARTIFACT_DIR || "/tmp/commentd-browser";
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!pageUrl) throw new Error("PAGE_URL is not set");
mkdirSync(artifactDir, { recursive: true });
const commentdUrl = process.env.COMMENTD_URL!;
const moderatorToken = process.env.MODERATOR_TOKEN!;
const commentdPid = Number(process.env.COMMENTD_PID);
const commentdArgs: string[] = JSON.parse(process.env.COMMENTD_ARGS || "[]");
let restarted: ChildProcess | null = null;

function portOpen(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const s = connect(Number(u.port), u.hostname);
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Stops commentd (started by the shell script) and starts it again on the same address and data. */
async function restartCommentd() {
  process.kill(commentdPid, "SIGTERM");
  for (let i = 0; (await portOpen(commentdUrl)) && i < 100; i++) await sleep(100);
  for (let attempt = 0; attempt < 50; attempt++) {
    const log = createWriteStream(join(artifactDir, "commentd-restarted.log"), { flags: "a" });
    const child = spawn(commentdArgs[0], commentdArgs.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr!.pipe(log);
    writeFileSync(process.env.COMMENTD_PID_FILE!, String(child.pid));
    const exited = new Promise((r) => child.once("exit", r));
    for (let i = 0; i < 50; i++) {
      if (await portOpen(commentdUrl)) {
        restarted = child;
        return;
      }
      if (child.exitCode !== null) break;
      await sleep(100);
    }
    child.kill("SIGTERM");
    await exited;
    await sleep(200); // the old process may still hold the database lock
  }
  throw new Error("commentd did not come back");
}

let failures = 0;
function ok(name: string) {
  console.log(`ok - ${name}`);
}
function notOk(name: string, detail?: unknown) {
  failures++;
  console.log(`not ok - ${name}`);
  if (detail) for (const line of String(detail).split("\n").slice(0, 15)) console.log(`#   ${line}`);
}
async function check(name: string, fn: () => Promise<void>) {
  try {
    await fn();
    ok(name);
    return true;
  } catch (e: any) {
    notOk(name, e?.message ?? e);
    return false;
  }
}

const profile = mkdtempSync(join(tmpdir(), "commentd-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 900, height: 1100 },
});

const consoleErrors: string[] = [];
function watch(page: any, label: string) {
  page.on("console", (m: any) => {
    if (m.type() === "error") consoleErrors.push(`${label}: ${m.text()}`);
  });
  page.on("pageerror", (e: Error) => consoleErrors.push(`${label}: ${e.message}`));
}

try {
  const page1 = context.pages()[0] ?? (await context.newPage());
  const page2 = await context.newPage();
  watch(page1, "page 1");
  watch(page2, "page 2");

  const live = (p: any, timeout = 10000) => p.locator('.cw-live[data-state="live"]').waitFor({ timeout });
  await check("both pages load the article and the widget goes live", async () => {
    await Promise.all([page1.goto(pageUrl), page2.goto(pageUrl)]);
    await Promise.all([live(page1), live(page2)]);
  });

  await check("the form's fields have labels", async () => {
    await page1.getByLabel("Your name").waitFor({ timeout: 2000 });
    await page1.getByLabel("Your comment").waitFor({ timeout: 2000 });
  });

  let postedAt = 0;
  let approvedAfter = 0;
  const clean = `The new bus lines are welcome news for the east side. (${Date.now()})`;
  await check("a clean comment posted in page 1 shows as published there", async () => {
    // The reader is looking at page 1: a background tab gets no animation
    // frames, which Playwright's actionability checks wait for.
    await page1.bringToFront();
    await page1.getByLabel("Your name").fill("Dana Reader");
    await page1.getByLabel("Your comment").fill(clean);
    postedAt = Date.now();
    await page1.getByRole("button", { name: "Post comment" }).click();
    await page1.locator('.cw-status[data-kind="approved"]').waitFor({ timeout: 5000 });
    approvedAfter = Date.now() - postedAt;
    await page1.locator(".cw-text", { hasText: clean }).waitFor({ timeout: 2000 });
  });

  await check("the clean comment appears live in page 2 within 1 second of posting", async () => {
    // Wait longer than the limit so that a failure says how late it was.
    await page2.locator(".cw-text", { hasText: clean }).waitFor({ timeout: 5000 });
    const ms = Date.now() - postedAt;
    console.log(`# page 2 showed it ${ms} ms after the click (page 1's verdict after ${approvedAfter} ms)`);
    if (ms > 1000) throw new Error(`page 2 showed it after ${ms} ms`);
  });

  const reply = `Agreed, though the library delay is a shame. (${Date.now()})`;
  await check("a reply posted in page 2 shows indented under its parent in page 1", async () => {
    await page2.bringToFront();
    const parent = page2.locator("li.cw-comment", { hasText: clean });
    await parent.getByRole("button", { name: "Reply" }).click();
    await page2.getByLabel("Your name").fill("Sam Commuter");
    await page2.getByLabel("Your comment").fill(reply);
    await page2.getByRole("button", { name: "Post comment" }).click();
    await page2.locator('.cw-status[data-kind="approved"]').waitFor({ timeout: 5000 });
    const nested = page1.locator("li.cw-comment", { hasText: clean }).locator("ul.cw-replies .cw-text", { hasText: reply });
    await nested.waitFor({ timeout: 2000 });
    const [px, rx] = await Promise.all([
      page1.locator(".cw-text", { hasText: clean }).boundingBox(),
      nested.boundingBox(),
    ]);
    if (!px || !rx) throw new Error("not laid out");
    if (!(rx.x > px.x + 10)) throw new Error(`reply at x=${rx.x}, parent at x=${px.x}: not indented`);
  });

  const abusive = "fuck you, go kill yourself";
  await check("an abusive comment gets a rejection message with the reason in page 1", async () => {
    await page1.bringToFront();
    await page1.getByLabel("Your comment").fill(abusive);
    await page1.getByRole("button", { name: "Post comment" }).click();
    const status = page1.locator('.cw-status[data-kind="rejected"]');
    await status.waitFor({ timeout: 5000 });
    const text = await status.innerText();
    if (!/rejected/i.test(text)) throw new Error(`status reads: ${text}`);
    if ((await status.locator("li").count()) === 0) throw new Error(`no reason shown: ${text}`);
  });

  await check("the abusive text appears in neither page's comment list", async () => {
    // Give a (wrongly) published comment time to arrive on the stream.
    await page2.waitForTimeout(1000);
    for (const [label, p] of [["page 1", page1], ["page 2", page2]] as const) {
      const texts = await p.locator(".cw-list").innerText();
      if (texts.toLowerCase().includes("kill yourself")) throw new Error(`${label} lists it`);
    }
  });

  // --- commentd restarts: the pages reconnect and resume from their cursor.
  const api = createClient(CommentService, createGrpcWebTransport({ baseUrl: commentdUrl }));
  const resumed = `Posted while the pages were disconnected. (${Date.now()})`;
  await check("after a commentd restart both pages resume and show a comment posted meanwhile", async () => {
    await restartCommentd();
    const res = await api.submitComment({
      articleId: "news/2026/city-budget",
      authorName: "Lee Night-Shift",
      text: resumed,
      clientId: "browser-test-node",
    });
    if (!res.comment) throw new Error(`not stored: ${JSON.stringify(res.verdict)}`);
    for (const p of [page1, page2]) {
      await p.locator(".cw-text", { hasText: resumed }).waitFor({ timeout: 20000 });
      await live(p, 20000);
    }
    for (const p of [page1, page2]) {
      const n = await p.locator(".cw-text", { hasText: clean }).count();
      if (n !== 1) throw new Error(`the first comment shows ${n} times after resuming`);
    }
  });

  await check("a comment removed by a moderator disappears from both pages within 1 second", async () => {
    const mod = createClient(
      ModerationService,
      createGrpcWebTransport({ baseUrl: commentdUrl, interceptors: [(next) => (req) => {
        req.header.set("authorization", `Bearer ${moderatorToken}`);
        return next(req);
      }] }),
    );
    const id = await page1.locator("li.cw-comment", { hasText: resumed }).getAttribute("data-comment-id");
    const t0 = Date.now();
    await mod.moderateComment({ commentId: id!, action: Action.REMOVE, note: "browser test" });
    for (const p of [page1, page2]) {
      await p.locator(".cw-text", { hasText: resumed }).waitFor({ state: "detached", timeout: Math.max(1, 1000 - (Date.now() - t0)) });
    }
    console.log(`# gone from both pages ${Date.now() - t0} ms after the removal`);
  });

  await check("no errors in the browser console", async () => {
    // Failed requests while commentd was down are expected.
    const errors = consoleErrors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to fetch|ERR_EMPTY_RESPONSE|ERR_INCOMPLETE_CHUNKED/.test(e));
    if (errors.length) throw new Error(errors.join("\n"));
  });

  const shot = join(artifactDir, "comments.png");
  await check(`screenshot saved to ${shot}`, async () => {
    await page1.screenshot({ path: shot, fullPage: true });
  });
} catch (e: any) {
  notOk("browser test ran to the end", e?.stack ?? e);
} finally {
  restarted?.kill("SIGTERM");
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failures ? 1 : 0);
