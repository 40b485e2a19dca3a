// GET /: the live broadcasts, polled from /api/broadcasts once a second.
import { $, h, config, broadcastURLs, urlRows, fmtBitrate, fmtDuration, summarize, viewerText, encodePath, sleep } from "/ui/common.js";

const list = $("#list");
const cards = new Map(); // path → {el, key}
const open = new Set(); // paths whose URL details are expanded
// With auth on, the list shows what the page's ?jwt= may watch (and the
// links carry it on).
const token = new URLSearchParams(location.search).get("jwt") || "";

function facts(s) {
	const fact = (k, v, cls = "", title = "") => h("div", { class: "fact", title }, h("span", { class: "k" }, k), h("span", { class: `v ${cls}` }, v || "–"));
	const video = s.video.map((v) => v.codec + (v.width ? ` ${v.width}×${v.height}` : "")).join(", ");
	const audio = s.audio.map((a) => a.codec + (a.rate ? ` ${a.rate / 1000} kHz` : "") + (a.channels ? ` ${a.channels === 1 ? "mono" : a.channels === 2 ? "stereo" : a.channels + " ch"}` : "")).join(", ");
	return h("div", { class: "facts" },
		fact("Video", video),
		fact("Audio", audio),
		fact("Bitrate", fmtBitrate(s.bitrate)),
		fact("Viewers", viewerText(s.viewers), "", "MoQ sessions subscribed to the broadcast; LL-HLS and WHEP count the server's feeds (one each, shared by all their viewers)"),
		fact("Live for", "", "since"),
		source(s) && fact("Source", source(s)));
}

// source names the ingest protocol (in-process publishers are named
// after it, e.g. "rtmp-client").
function source(s) {
	if (s.fromRelay) return "upstream relay";
	const m = /^(rtmp|whip|srt)/i.exec(s.publisher || "");
	return m ? m[1].toUpperCase() : s.publisher;
}

function card(s) {
	const u = broadcastURLs(s.path, token);
	const details = h("details", { open: open.has(s.path) },
		h("summary", {}, "Player URLs"),
		urlRows([
			["Watch page", u.watch],
			["LL-HLS", u.hls, "any HLS player: Safari, hls.js, VLC, ffplay"],
			["WHEP", u.whep, "WebRTC playback (OBS, browsers)"],
			["MoQ (WebTransport)", u.moqWT, `relay URL; broadcast name ${s.path}`],
			["MoQ (QUIC)", u.moqQUIC, `e.g. moqgate sub --insecure ${u.moqQUIC} ${s.path}`],
		]));
	details.addEventListener("toggle", () => (details.open ? open.add(s.path) : open.delete(s.path)));
	return h("article", { class: "card", "data-path": s.path },
		h("div", { class: "title" },
			h("span", { class: "badge live" }, "live"),
			h("a", { class: "name", href: u.watch }, s.path),
			h("div", { class: "actions" },
				h("a", { class: "button primary small", href: u.watch }, "▶ Watch"))),
		facts(s),
		details);
}

function render(broadcasts) {
	const seen = new Set();
	let prev = null;
	for (const b of broadcasts) {
		const s = summarize(b);
		seen.add(s.path);
		// Re-render a card only when what it shows changed (keeps focus and
		// the copy buttons' feedback); "Live for" is updated in place.
		const key = JSON.stringify(s);
		let c = cards.get(s.path);
		if (!c || c.key !== key) {
			const el = card(s);
			if (c) c.el.replaceWith(el);
			c = { el, key };
			cards.set(s.path, c);
		}
		if (prev ? prev.nextSibling !== c.el : list.firstChild !== c.el) {
			prev ? prev.after(c.el) : list.prepend(c.el);
		}
		prev = c.el;
		if (s.since) c.el.querySelector(".since").textContent = fmtDuration(Date.now() - s.since);
	}
	for (const [path, c] of cards) {
		if (!seen.has(path)) {
			c.el.remove();
			cards.delete(path);
		}
	}
	$("#count").textContent = `${broadcasts.length} live`;
	$("#empty").classList.toggle("hidden", broadcasts.length > 0);
}

async function poll() {
	for (;;) {
		try {
			const r = await fetch("/api/broadcasts", { cache: "no-store", headers: token ? { Authorization: "Bearer " + token } : {} });
			if (r.status === 401 && config.auth) {
				render([]);
				$("#updated").textContent = token ? "the token was refused (invalid or expired)" : "this server needs a token: open this page with ?jwt=TOKEN";
				await sleep(5000);
				continue;
			}
			if (!r.ok) throw new Error(`HTTP ${r.status}`);
			const { broadcasts } = await r.json();
			(broadcasts || []).sort((a, b) => a.path.localeCompare(b.path));
			render(broadcasts || []);
			$("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
		} catch (e) {
			$("#updated").textContent = `server unreachable (${e.message}); retrying`;
		}
		await sleep(1000);
	}
}

function setupEmpty() {
	$("#ffmpeg").textContent =
		`ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine \\\n` +
		`  -c:v libx264 -preset veryfast -tune zerolatency -g 30 -bf 0 -c:a aac \\\n` +
		`  -f flv rtmp://${location.hostname}:1935/live/test`;
	$("#quick").addEventListener("submit", (e) => {
		e.preventDefault();
		const name = $("#quickname").value.trim().replace(/^\/+|\/+$/g, "");
		if (name) location.href = `/publish/${encodePath(name)}`;
	});
}

async function fingerprint() {
	try {
		const r = await fetch("/certificate.sha256", { cache: "no-store" });
		$("#fp").textContent = r.ok ? await r.text() : "–";
	} catch {
		$("#fp").textContent = "–";
	}
}

setupEmpty();
fingerprint();
poll();
