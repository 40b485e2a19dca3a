#!/usr/bin/env node
// Bundles the players that moqgate's embedded web pages use into minified
// ES modules, with the licence texts of everything bundled:
//
//   node ui-bundle.mjs [OUTDIR]     (default ../internal/ui/assets/vendor)
//
//   moqwatch.js   <moq-watch> (@moq/watch/element)
//   hls.js        hls.js (light build: no alternate audio, subtitles or EME,
//                 which moqgate's LL-HLS does not use), default export
//   LICENSES.txt  name, version, licence and licence text of each package
//
// The output is deterministic (no source maps, no timestamps), so
// `make ui-bundle-check` can rebuild it into a temporary directory and
// compare it with the committed files. Run `make ui-bundle` after changing
// web/package-lock.json.
import { mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || join(here, "../internal/ui/assets/vendor"));

const entries = {
	moqwatch: `import "@moq/watch/element";`,
	hls: `import Hls from "hls.js/light"; export default Hls;`,
};

// @moq/hang loads an LGPL libav.js Opus decoder (and fetches its wasm from
// a CDN) only in browsers without WebCodecs audio. The pages load nothing
// from outside the server, so the polyfill is left out: there, audio does
// not play and the video still does.
const noPolyfill = {
	name: "no-libav-polyfill",
	setup(build) {
		build.onResolve({ filter: /^(@libav\.js\/variant-opus-af|@kixelated\/libavjs-webcodecs-polyfill)$/ }, (a) => ({
			path: a.path,
			namespace: "stub",
		}));
		build.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
			contents: `export function load() { return Promise.reject(new Error("this browser lacks WebCodecs audio (the Opus polyfill is not bundled)")); }`,
		}));
	},
};

async function bundle(name, contents) {
	const r = await esbuild.build({
		stdin: { contents, resolveDir: here, sourcefile: `${name}-entry.js` },
		absWorkingDir: here, // metafile inputs are relative to it
		outfile: join(out, `${name}.js`),
		bundle: true,
		minify: true,
		// ESM: @moq/signals reads import.meta.env, which an IIFE would lose.
		format: "esm",
		platform: "browser",
		target: ["chrome111", "firefox115", "safari16.4"],
		legalComments: "none", // the licences go to LICENSES.txt
		define: { "import.meta.env": "undefined" },
		plugins: [noPolyfill],
		metafile: true,
		logLevel: "warning",
	});
	return Object.keys(r.metafile.inputs);
}

// packageDir returns the node_modules package directory an input file is in.
function packageDir(input) {
	const parts = input.split("/");
	const i = parts.lastIndexOf("node_modules");
	if (i < 0) return undefined;
	const n = parts[i + 1].startsWith("@") ? 2 : 1;
	return parts.slice(0, i + 1 + n).join("/");
}

async function licenceText(dir) {
	const files = (await readdir(join(here, dir))).filter((f) => /^(licen[cs]e|copying)/i.test(f)).sort();
	const texts = await Promise.all(files.map((f) => readFile(join(here, dir, f), "utf8")));
	return texts.join("\n").trim();
}

async function main() {
	await rm(out, { recursive: true, force: true });
	await mkdir(out, { recursive: true });
	const dirs = new Set();
	for (const [name, contents] of Object.entries(entries)) {
		for (const input of await bundle(name, contents)) {
			const d = packageDir(input);
			if (d) dirs.add(d);
		}
	}
	let text = "Third-party software bundled into moqwatch.js and hls.js by web/ui-bundle.mjs.\n";
	for (const dir of [...dirs].sort()) {
		const pkg = JSON.parse(await readFile(join(here, dir, "package.json"), "utf8"));
		const body = (await licenceText(dir)) || `No licence file in the package; its package.json says: ${pkg.license}.`;
		text += `\n${"=".repeat(72)}\n${pkg.name} ${pkg.version} (${pkg.license})\n${"=".repeat(72)}\n\n${body}\n`;
	}
	await writeFile(join(out, "LICENSES.txt"), text);
	console.log("bundled into", relative(process.cwd(), out) || ".");
}

await main();
