// Helpers shared by moqgate's pages (ES module, no dependencies).

// config is the JSON the server put into the page's #config script.
export const config = JSON.parse(document.getElementById("config").textContent);

export const $ = (sel, root = document) => root.querySelector(sel);

// cspViolations lists what the page's Content-Security-Policy blocked (the
// pages load nothing from outside the server; tests check this stays empty).
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolations.push(`${e.effectiveDirective} ${e.blockedURI}`));

// h builds an element: h("a", {href: "/", class: "x"}, "text", child...).
export function h(tag, attrs = {}, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (v === undefined || v === null || v === false) continue;
		if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
		else e.setAttribute(k, v === true ? "" : String(v));
	}
	for (const c of children.flat()) {
		if (c !== undefined && c !== null && c !== false) e.append(c instanceof Node ? c : String(c));
	}
	return e;
}

// encodePath escapes each segment of a broadcast path, keeping the slashes.
export const encodePath = (p) => p.split("/").map(encodeURIComponent).join("/");

// withToken appends ?jwt= (or &jwt=) when there is a token.
export function withToken(url, token) {
	if (!token) return url;
	return url + (url.includes("?") ? "&" : "?") + "jwt=" + encodeURIComponent(token);
}

// broadcastURLs are the ways to reach a broadcast on this server.
export function broadcastURLs(path, token) {
	const o = location.origin, p = encodePath(path);
	return {
		watch: withToken(`${o}/watch/${p}`, token),
		publish: `${o}/publish/${p}`,
		hls: withToken(`${o}/hls/${p}/index.m3u8`, token),
		whep: `${o}/whep/${p}`,
		whip: `${o}/whip/${p}`,
		// WebTransport on the same port number (UDP); raw QUIC MoQ there too.
		moqWT: `https://${location.host}/`,
		moqQUIC: `moqt://${location.host}`,
	};
}

// urlRows renders label / URL / copy-button rows into a .urls grid.
export function urlRows(rows) {
	const grid = h("div", { class: "urls" });
	for (const [label, value, hint] of rows) {
		grid.append(h("span", { class: "k", title: hint || "" }, label), h("code", {}, value), copyButton(value));
	}
	return grid;
}

export function copyButton(text) {
	const b = h("button", { class: "small", type: "button", title: "Copy to the clipboard" }, "Copy");
	b.addEventListener("click", async () => {
		try {
			await navigator.clipboard.writeText(text);
		} catch {
			// Plain-HTTP pages on another host have no clipboard API.
			const ta = h("textarea", { class: "offscreen" });
			ta.value = text;
			document.body.append(ta);
			ta.select();
			document.execCommand("copy");
			ta.remove();
		}
		b.textContent = "Copied";
		setTimeout(() => (b.textContent = "Copy"), 1200);
	});
	return b;
}

export function fmtBitrate(bps) {
	if (!(bps > 0)) return "–";
	if (bps >= 1e6) return `${(bps / 1e6).toFixed(bps >= 1e7 ? 0 : 1)} Mbit/s`;
	return `${Math.round(bps / 1e3)} kbit/s`;
}

export function fmtDuration(ms) {
	const s = Math.max(0, Math.floor(ms / 1000));
	const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
	return hh ? `${hh}h ${String(mm).padStart(2, "0")}m` : mm ? `${mm}m ${String(ss).padStart(2, "0")}s` : `${ss}s`;
}

export function fmtMs(ms) {
	if (!(ms >= 0)) return "–";
	return ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

// codecName turns a codec string into a short human name.
export function codecName(c) {
	if (!c) return "";
	const l = c.toLowerCase();
	if (l.startsWith("avc") || l === "h264") return "H.264";
	if (l.startsWith("hvc") || l.startsWith("hev") || l === "h265") return "H.265";
	if (l.startsWith("vp09") || l === "vp9") return "VP9";
	if (l.startsWith("vp8")) return "VP8";
	if (l.startsWith("av01") || l === "av1") return "AV1";
	if (l === "opus") return "Opus";
	if (l.startsWith("mp4a")) return "AAC";
	return c;
}

// summarize reduces an /api/broadcasts entry to what the pages show.
export function summarize(b) {
	const tracks = b.tracks || [];
	const video = tracks.filter((t) => t.kind === "video" || (t.width > 0 && !t.sample_rate));
	const audio = tracks.filter((t) => t.kind === "audio" || t.sample_rate > 0);
	const viewers = {};
	let bitrate = 0;
	for (const t of tracks) {
		if (t.kind) bitrate += t.measured_bitrate || t.bitrate || 0;
		// A viewer subscribes to several tracks; count it once per protocol.
		for (const [proto, n] of Object.entries(t.subscribers || {})) viewers[proto] = Math.max(viewers[proto] || 0, n);
	}
	const best = video.reduce((a, t) => (!a || (t.width || 0) > (a.width || 0) ? t : a), undefined);
	return {
		path: b.path,
		since: b.since ? Date.parse(b.since) : undefined,
		publisher: b.publisher,
		fromRelay: b.from_relay,
		video: video.map((t) => ({ name: t.name, codec: codecName(t.codec), width: t.width, height: t.height })),
		audio: audio.map((t) => ({ name: t.name, codec: codecName(t.codec), rate: t.sample_rate, channels: t.channels })),
		resolution: best && best.width ? `${best.width}×${best.height}` : "",
		bitrate,
		viewers,
	};
}

// viewerText is e.g. "3 (2 WebTransport, 1 HLS)".
export function viewerText(viewers) {
	// In-process adapters: "hls" is one LL-HLS muxer, "local" the WHEP feed.
	const names = { webtransport: "WebTransport", quic: "QUIC", hls: "LL-HLS", local: "WHEP", whep: "WHEP", srt: "SRT", relay: "relay" };
	const parts = Object.entries(viewers).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
	const total = parts.reduce((s, [, n]) => s + n, 0);
	if (!total) return "0";
	return `${total} (${parts.map(([p, n]) => `${n} ${names[p] || p}`).join(", ")})`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// iceGathered waits for the host candidates (fast on one machine) for at
// most 2 s: WHIP and WHEP here are non-trickle, one offer with candidates.
export function iceGathered(pc) {
	return Promise.race([
		new Promise((r) => {
			if (pc.iceGatheringState === "complete") return r();
			pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r());
		}),
		sleep(2000),
	]);
}
