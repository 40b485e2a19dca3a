// Manual cross-check of media's output against the real player code:
// @moq/hang 0.3.5's catalog schema and CMAF decoder (what @moq/watch 0.4.6
// runs) and @moq/msf 0.2.1's catalog decoder. Not part of `go test`.
//
//   cd /tmp/pc && npm init -y && npm i @moq/hang@0.3.5 @moq/msf@0.2.1 esbuild
//   cp .../media/testdata/playercheck/check.mjs . && npx esbuild check.mjs \
//     --bundle --platform=node --format=esm --outfile=check.bundle.mjs
//   node check.bundle.mjs DIR
//
// DIR holds hang.json, msf.json and NAME-NNNN fragment files (one per object)
// for each rendition NAME, as the Go packager writes them.
import { RootSchema } from "./node_modules/@moq/hang/catalog/root.js";
import { decodeInitSegment, decodeDataSegment } from "./node_modules/@moq/hang/container/cmaf/decode.js";
import * as Msf from "./node_modules/@moq/msf/catalog.js";
import fs from "fs";

const dir = process.argv[2];
const hang = RootSchema.parse(JSON.parse(fs.readFileSync(dir + "/hang.json", "utf8")));
const msf = Msf.decode(fs.readFileSync(dir + "/msf.json"));
console.log("msf:", msf.tracks.map((t) => `${t.name}:${t.role}:${t.packaging}:${t.codec}`).join(" "));
for (const sec of [hang.video, hang.audio]) {
  for (const [name, r] of Object.entries(sec?.renditions ?? {})) {
    const init = decodeInitSegment(Buffer.from(r.container.init, "base64"));
    const desc = init.description ? Buffer.from(init.description).toString("hex") : undefined;
    console.log(`${name}: ${r.codec} timescale=${init.timescale} track=${init.trackId} description matches: ${desc === r.description}`);
    const out = [];
    for (const f of fs.readdirSync(dir).filter((f) => f.startsWith(name + "-")).sort()) {
      for (const s of decodeDataSegment(new Uint8Array(fs.readFileSync(dir + "/" + f)), init)) {
        out.push(`${s.timestamp}${s.keyframe ? "K" : ""}/${s.duration}`);
      }
    }
    console.log(`  ${out.length} samples (µs, K=key, /duration): ${out.slice(0, 8).join(" ")} …`);
  }
}
