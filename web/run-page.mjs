#!/usr/bin/env node
// Opens a page in headless Chromium and prints what the page reports.
//
//   node run-page.mjs URL [--timeout=MS] [--arg=CHROMIUM_FLAG]... [--screenshot=FILE]
//                         [--viewport=WxH]
//
// The page sets window.__result (any JSON value) when it is done, or
// window.__error (a string) when it failed; it may keep window.__progress
// up to date for diagnostics. This script waits for either, prints
// JSON.stringify(window.__result) on stdout and exits 0; on window.__error
// it exits 1, on timeout 2 (printing window.__progress to stderr). Console
// messages, page errors and failed requests go to stderr, one per line.
//
// Chromium is /usr/bin/chromium (or $CHROMIUM), driven with playwright-core;
// no browser is ever downloaded.
import { launch, logPage } from "./chromium.mjs";

function usage(msg) {
	process.stderr.write(`run-page: ${msg}\nusage: node run-page.mjs URL [--timeout=MS] [--arg=FLAG]... [--screenshot=FILE] [--viewport=WxH]\n`);
	process.exit(64);
}

function parseArgs(argv) {
	const opts = { url: undefined, timeout: 30000, args: [], screenshot: undefined, viewport: { width: 1280, height: 720 } };
	for (const a of argv) {
		if (a.startsWith("--timeout=")) opts.timeout = Number(a.slice(10));
		else if (a.startsWith("--arg=")) opts.args.push(a.slice(6));
		else if (a.startsWith("--screenshot=")) opts.screenshot = a.slice(13);
		else if (a.startsWith("--viewport=")) {
			const [w, h] = a.slice(11).split("x").map(Number);
			if (!(w > 0 && h > 0)) usage(`bad viewport ${a}`);
			opts.viewport = { width: w, height: h };
		} else if (a.startsWith("--")) usage(`unknown option ${a}`);
		else if (opts.url === undefined) opts.url = a;
		else usage(`unexpected argument ${a}`);
	}
	if (!opts.url) usage("missing URL");
	if (!(opts.timeout > 0)) usage("bad --timeout");
	return opts;
}

const log = (line) => process.stderr.write(`${line}\n`);

async function main() {
	const opts = parseArgs(process.argv.slice(2));
	const browser = await launch(opts.args);
	let code = 0;
	try {
		const context = await browser.newContext({ viewport: opts.viewport });
		const page = await context.newPage();
		logPage(page, log);

		const deadline = Date.now() + opts.timeout;
		await page.goto(opts.url, { waitUntil: "domcontentloaded", timeout: opts.timeout });
		let done;
		try {
			done = await page.waitForFunction(
				() => {
					if (window.__error !== undefined) return { error: String(window.__error) };
					if (window.__result !== undefined) return { result: JSON.stringify(window.__result) };
					return undefined;
				},
				undefined,
				{ polling: 100, timeout: Math.max(1, deadline - Date.now()) },
			);
		} catch (e) {
			if (e?.name !== "TimeoutError") throw e;
		}
		const outcome = done ? await done.jsonValue() : undefined;
		if (opts.screenshot) await page.screenshot({ path: opts.screenshot }).catch((e) => log(`screenshot: ${e}`));
		if (!outcome) {
			const progress = await page.evaluate(() => JSON.stringify(window.__progress)).catch(() => undefined);
			log(`run-page: timeout after ${opts.timeout} ms waiting for window.__result; window.__progress = ${progress}`);
			code = 2;
		} else if (outcome.error !== undefined) {
			log(`run-page: page error: ${outcome.error}`);
			code = 1;
		} else {
			process.stdout.write(`${outcome.result}\n`);
		}
	} finally {
		await browser.close();
	}
	return code;
}

main().then(
	(code) => process.exit(code),
	(e) => {
		log(`run-page: ${e?.stack || e}`);
		process.exit(1);
	},
);
