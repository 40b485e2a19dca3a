// Shared by run-page.mjs and drive.mjs: Debian's Chromium, headless, driven
// with playwright-core (no browser is ever downloaded), and a page's
// console, errors and failed requests logged one per line.
import { chromium } from "playwright-core";

const BASE_ARGS = [
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
];

// launch starts /usr/bin/chromium (or $CHROMIUM) with extra flags.
export function launch(args = []) {
	return chromium.launch({
		executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
		headless: true,
		args: [...BASE_ARGS, ...args],
		timeout: 60000,
	});
}

// logPage sends what the page reports to log, each line tagged "[TAG...]".
export function logPage(page, log, tag = "") {
	const t = tag ? `${tag} ` : "";
	page.on("console", (m) => log(`[${t}console.${m.type()}] ${m.text()}`));
	page.on("pageerror", (e) => log(`[${t}pageerror] ${e.stack || e.message || e}`));
	page.on("requestfailed", (r) => log(`[${t}requestfailed] ${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
	page.on("crash", () => log(`[${t}crash] page crashed`));
}
