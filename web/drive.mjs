#!/usr/bin/env node
// Drives one headless Chromium for a Go test over stdin/stdout, so that a
// test can open several pages in one browser and check them as it goes.
//
//   node drive.mjs [--arg=CHROMIUM_FLAG]...
//
// Each stdin line is a JSON request {id, op, ...}; each stdout line the
// answer {id, value} or {id, error}. Requests run concurrently.
//
//   {op: "open", page, url, width?, height?, init?}
//                                              new page (own context) at url;
//                                              init: a script run before the page's
//                                              own (e.g. to hide a browser feature)
//   {op: "eval", page, expr}                   value of the JS expression
//   {op: "wait", page, expr, timeout}          first truthy value of expr (polled)
//   {op: "screenshot", page, path}             PNG of the page's viewport
//   {op: "close", page}
//
// Console messages, page errors and failed requests go to stderr, prefixed
// with the page name. The browser closes when stdin ends. Chromium is
// /usr/bin/chromium (or $CHROMIUM); no browser is ever downloaded.
import { createInterface } from "node:readline";
import { launch, logPage } from "./chromium.mjs";

const log = (line) => process.stderr.write(`${line}\n`);
const send = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`);

const extra = process.argv.slice(2).filter((a) => a.startsWith("--arg=")).map((a) => a.slice(6));
const browser = await launch(extra);
const pages = new Map(); // name → promise of {context, page}, set as soon as opening starts

async function need(name) {
	const p = pages.get(name);
	if (!p) throw new Error(`no page ${name}`);
	return (await p).page;
}

const ops = {
	async open({ page: name, url, width, height, init }) {
		if (pages.has(name)) throw new Error(`page ${name} is open`);
		const context = browser.newContext({ viewport: { width: width || 1280, height: height || 800 } });
		const ready = (async () => {
			const c = await context;
			if (init) await c.addInitScript(init);
			const page = await c.newPage();
			logPage(page, log, name);
			await page.goto(url, { waitUntil: "domcontentloaded", timeout: 30000 });
			return { context: c, page };
		})();
		pages.set(name, ready);
		try {
			await ready;
		} catch (e) {
			pages.delete(name);
			(await context.catch(() => undefined))?.close();
			throw e;
		}
		return true;
	},
	async eval({ page, expr }) {
		return (await need(page)).evaluate(expr);
	},
	// Polled with evaluate (a DevTools evaluation) rather than
	// waitForFunction, which the pages' Content-Security-Policy blocks.
	async wait({ page, expr, timeout }) {
		const p = await need(page);
		const deadline = Date.now() + (timeout || 30000);
		for (;;) {
			const v = await p.evaluate(expr);
			if (v) return v;
			if (Date.now() > deadline) throw new Error(`timeout after ${timeout} ms waiting for ${expr}`);
			await new Promise((r) => setTimeout(r, 100));
		}
	},
	async screenshot({ page, path }) {
		await (await need(page)).screenshot({ path });
		return path;
	},
	async close({ page: name }) {
		const p = pages.get(name);
		pages.delete(name);
		if (p) await (await p).context.close();
		return true;
	},
};

const pending = new Set();
const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
	if (!line.trim()) return;
	let req;
	try {
		req = JSON.parse(line);
	} catch (e) {
		log(`drive: bad request ${line}: ${e.message}`);
		return;
	}
	const op = ops[req.op];
	const run = op ? op(req) : Promise.reject(new Error(`unknown op ${req.op}`));
	const p = run.then(
		(value) => send({ id: req.id, value: value === undefined ? null : value }),
		(e) => send({ id: req.id, error: String(e?.message || e) }),
	);
	pending.add(p);
	p.finally(() => pending.delete(p));
});
rl.on("close", async () => {
	await Promise.allSettled([...pending]);
	await browser.close();
	process.exit(0);
});
