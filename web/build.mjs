// Builds the browser test pages into dist/ (gitignored):
//   dist/moqwatch.js  <moq-watch> element (@moq/watch/element), ES module
//   dist/hls.js       hls.js, ES module that also sets window.Hls
//   dist/shaka.js     Shaka Player (experimental build, with MSF), ES module
//                     that also sets window.shaka
//   dist/*.html, *.js test pages copied from pages/ (watch.html: @moq/watch;
//                     shaka.html: Shaka Player over MSF; whip.html /
//                     whep.html: WebRTC publisher and player)
// Run with `npm run build` (after `npm ci`).
import { cp, mkdir, rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const dist = here("./dist");

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

await esbuild.build({
	entryPoints: {
		moqwatch: here("./src/moqwatch.js"),
		hls: here("./src/hls.js"),
		shaka: here("./src/shaka.js"),
	},
	outdir: dist,
	bundle: true,
	// ESM: @moq/signals reads import.meta.env, which an IIFE bundle would lose.
	format: "esm",
	platform: "browser",
	target: "chrome120",
	sourcemap: true,
	logLevel: "warning",
	define: { "import.meta.env": "undefined" },
});

await cp(here("./pages"), dist, { recursive: true });
console.log("built", dist);
