// GET /watch/{broadcast}: plays a broadcast over MoQ (WebTransport, with
// @moq/watch), WHEP (RTCPeerConnection) or LL-HLS (hls.js, or native HLS
// in Safari). The state is kept in window.__watch for scripts and tests.
import { $, config, broadcastURLs, urlRows, encodePath, withToken, fmtMs, summarize, sleep, iceGathered } from "/ui/common.js";

const path = config.broadcast;
const q = new URLSearchParams(location.search);
const token = q.get("jwt") || "";
const urls = broadcastURLs(path, token);

const status = {
	transport: "", state: "starting", frames: 0, width: 0, height: 0,
	latencyMs: null, latencyKind: "", stalls: 0, message: "", error: "",
};
window.__watch = status;

const nativeHLS = !!document.createElement("video").canPlayType("application/vnd.apple.mpegurl");
const support = {
	moq: typeof WebTransport === "function" && typeof VideoDecoder === "function",
	whep: typeof RTCPeerConnection === "function",
	hls: !!(window.MediaSource || window.ManagedMediaSource) || nativeHLS,
};
const labels = { moq: "MoQ", whep: "WHEP", hls: "LL-HLS" };
const longLabels = { moq: "MoQ over WebTransport", whep: "WHEP (WebRTC)", hls: "LL-HLS" };
const via = { moq: "WebTransport", whep: "WebRTC", hls: nativeHLS && !window.MediaSource ? "native player" : "hls.js" };
const lacks = {
	moq: `This browser has no ${typeof WebTransport !== "function" ? "WebTransport" : "WebCodecs (VideoDecoder)"}, which MoQ playback needs.`,
	whep: "This browser has no WebRTC (RTCPeerConnection), which WHEP playback needs.",
	hls: "This browser has neither Media Source Extensions nor native HLS.",
};

const choice = ["moq", "whep", "hls"].includes(q.get("transport")) ? q.get("transport") : "auto";
const chosen = choice === "auto" ? ["moq", "whep", "hls"].find((t) => support[t]) : choice;

// PlayerError is a failure the page explains; kind "refused" and
// "unsupported" are final, "notfound" waits for the broadcast, others retry.
class PlayerError extends Error {
	constructor(kind, message, detail = "") {
		super(message);
		this.kind = kind;
		this.detail = detail;
	}
}

// ---- on-screen state ----

function setState(s, cls = "") {
	status.state = s;
	const b = $("#state");
	b.textContent = s;
	b.className = `badge ${cls}`;
}

const svg = (d) => `<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${d}</svg>`;
const icons = {
	info: svg('<circle cx="12" cy="12" r="2"/><path d="M7.8 16.2a6 6 0 0 1 0-8.4M16.2 7.8a6 6 0 0 1 0 8.4M5 19a10 10 0 0 1 0-14M19 5a10 10 0 0 1 0 14"/>'),
	error: svg('<path d="M12 3l10 18H2z"/><path d="M12 10v5M12 18v.5"/>'),
	refused: svg('<rect x="5" y="11" width="14" height="10" rx="2"/><path d="M8 11V8a4 4 0 0 1 8 0v3"/>'),
	unsupported: svg('<circle cx="12" cy="12" r="9"/><path d="M5.6 5.6l12.8 12.8"/>'),
};

// overlay shows a message over the player; kind: "wait" (spinner),
// "info", "error", "refused".
function overlay(kind, msg, detail = "") {
	status.message = msg;
	$("#overlay").classList.remove("hidden");
	$("#spinner").classList.toggle("hidden", kind !== "wait");
	const icon = icons[kind];
	$("#icon").classList.toggle("hidden", !icon);
	$("#icon").innerHTML = icon || "";
	$("#msg").textContent = msg;
	$("#detail").textContent = detail;
	$("#tokenform").classList.toggle("hidden", kind !== "refused");
}

function hideOverlay() {
	status.message = "";
	$("#overlay").classList.add("hidden");
}

function showStats() {
	$("#s-transport").textContent = status.transport ? labels[status.transport] : "–";
	$("#d-transport").textContent = status.transport ? via[status.transport] : "";
	$("#s-resolution").textContent = status.width ? `${status.width}×${status.height}` : "–";
	$("#s-latency").textContent = status.latencyMs === null ? "–" : fmtMs(status.latencyMs);
	$("#d-latency").textContent = status.latencyKind;
	const st = $("#s-stalls");
	st.textContent = String(status.stalls);
	st.className = `v ${status.stalls ? "warn" : "ok"}`;
	$("#s-frames").textContent = String(status.frames);
	$("#d-frames").textContent = status.fps ? `${status.fps} fps` : "";
}

// ---- frames and stalls, the same for every transport ----

let lastFrameAt = 0, stalled = false;

function onFrame() {
	status.frames++;
	lastFrameAt = performance.now();
	if (status.frames === 1 || stalled) {
		hideOverlay();
		setState("playing", "live");
	}
	stalled = false;
}

// A stall: no new frame for a second after playback had started.
function checkStall() {
	if (status.frames > 0 && !stalled && lastFrameAt && performance.now() - lastFrameAt > 1000) {
		stalled = true;
		status.stalls++;
		setState("stalled");
	}
}

// ---- transports ----

const player = $("#player");

function newVideo() {
	const v = document.createElement("video");
	Object.assign(v, { muted: true, autoplay: true, playsInline: true });
	// Presented frames, where the browser has requestVideoFrameCallback.
	if ("requestVideoFrameCallback" in v) {
		let last = -1;
		const cb = (_now, meta) => {
			if (meta.mediaTime !== last) {
				last = meta.mediaTime;
				onFrame();
			}
			v.requestVideoFrameCallback(cb);
		};
		v.requestVideoFrameCallback(cb);
	} else {
		let last = -1;
		v.addEventListener("timeupdate", () => v.currentTime !== last && ((last = v.currentTime), onFrame()));
	}
	player.prepend(v);
	return v;
}

// Each transport returns {stop, size(), latency(), unmute(), failed}, where
// failed is a promise that rejects with a PlayerError.
const transports = {
	async moq() {
		await import("/ui/vendor/moqwatch.js");
		const el = document.createElement("moq-watch");
		// http: makes it fetch /certificate.sha256 and pin that hash; the
		// query (the token) is kept on the WebTransport URL.
		el.setAttribute("url", withToken(location.origin + "/", token));
		el.setAttribute("name", path);
		el.setAttribute("visible", "always");
		el.setAttribute("muted", "");
		el.append(document.createElement("canvas"));
		player.prepend(el);
		let fail;
		const failed = new Promise((_, rej) => (fail = rej));
		let last, raf, since = performance.now();
		const tick = () => {
			const ts = el.renderer?.out.timestamp.peek();
			if (ts !== undefined && ts !== last) {
				last = ts;
				onFrame();
			}
			if (el.video?.source.out.error?.peek() === "unsupported") {
				fail(new PlayerError("unsupported", "This browser cannot decode the broadcast's video codec."));
			}
			const conn = el.connection?.status.peek();
			if (conn !== "connected" && status.frames === 0 && performance.now() - since > 8000) {
				overlay("wait", "Still connecting over WebTransport…",
					`The relay is on UDP port ${location.port || 443}; a firewall or proxy may block it. Try WHEP or LL-HLS.`);
				since = Infinity;
			}
			raf = requestAnimationFrame(tick);
		};
		raf = requestAnimationFrame(tick);
		return {
			failed,
			stop() {
				cancelAnimationFrame(raf);
				el.remove();
			},
			size: () => el.video?.out.display.peek(),
			latency() {
				// The player's playout buffer plus half the round trip: the
				// delay the player adds on top of the server's.
				const buf = el.sync?.out.buffer.peek();
				let rtt;
				try {
					rtt = el.connection.established.peek()?.probe?.peek()?.rtt;
				} catch {
					rtt = undefined;
				}
				if (buf === undefined) return null;
				return { ms: buf + (rtt ? rtt / 2 : 0), kind: "playout buffer + ½ RTT" };
			},
			unmute() {
				el.removeAttribute("muted");
				el.setAttribute("volume", "1");
			},
		};
	},

	async whep() {
		const video = newVideo();
		const audio = new Audio();
		audio.autoplay = true;
		audio.muted = true;
		const pc = new RTCPeerConnection();
		pc.addTransceiver("video", { direction: "recvonly" });
		pc.addTransceiver("audio", { direction: "recvonly" });
		pc.ontrack = (e) => {
			if (e.track.kind === "video") video.srcObject = new MediaStream([e.track]);
			else audio.srcObject = new MediaStream([e.track]);
		};
		let fail;
		const failed = new Promise((_, rej) => (fail = rej));
		pc.onconnectionstatechange = () => {
			if (pc.connectionState === "failed") fail(new PlayerError("network", "The WebRTC connection failed."));
		};
		await pc.setLocalDescription(await pc.createOffer());
		await iceGathered(pc);
		const headers = { "Content-Type": "application/sdp" };
		if (token) headers.Authorization = "Bearer " + token;
		const resp = await fetch(urls.whep, { method: "POST", headers, body: pc.localDescription.sdp });
		const body = await resp.text(); // SDP: keep the final CRLF
		const cleanup = () => {
			pc.close();
			video.remove();
			audio.srcObject = null;
		};
		if (resp.status !== 201) {
			cleanup();
			throw httpError(resp.status, body.trim());
		}
		const resource = new URL(resp.headers.get("Location"), urls.whep).toString();
		await pc.setRemoteDescription({ type: "answer", sdp: body });
		let lat = null;
		const statsTimer = setInterval(async () => {
			let jb, rtt;
			(await pc.getStats()).forEach((s) => {
				if (s.type === "inbound-rtp" && s.kind === "video" && s.jitterBufferEmittedCount) jb = (1000 * s.jitterBufferDelay) / s.jitterBufferEmittedCount;
				if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime !== undefined) rtt = s.currentRoundTripTime * 1000;
			});
			if (jb !== undefined) lat = jb + (rtt || 0) / 2;
		}, 1000);
		return {
			failed,
			stop() {
				clearInterval(statsTimer);
				cleanup();
				fetch(resource, { method: "DELETE", headers: token ? { Authorization: "Bearer " + token } : {}, keepalive: true }).catch(() => {});
			},
			size: () => ({ width: video.videoWidth, height: video.videoHeight }),
			latency: () => (lat === null ? null : { ms: lat, kind: "jitter buffer + ½ RTT" }),
			unmute() {
				video.muted = false;
				audio.muted = false;
				audio.play().catch(() => {});
			},
		};
	},

	async hls() {
		const video = newVideo();
		let fail;
		const failed = new Promise((_, rej) => (fail = rej));
		const { default: Hls } = await import("/ui/vendor/hls.js");
		let hls;
		if (Hls.isSupported()) {
			hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5, liveDurationInfinity: true });
			hls.on(Hls.Events.ERROR, (_e, d) => {
				const code = d.response?.code;
				if (code === 401 || code === 403 || code === 404) fail(httpError(code, d.response?.text || ""));
				else if (d.fatal) fail(new PlayerError("network", `LL-HLS playback failed (${d.details}).`));
			});
			hls.loadSource(urls.hls);
			hls.attachMedia(video);
		} else {
			// Safari plays LL-HLS itself; probe the playlist for a clear refusal.
			const r = await fetch(urls.hls, { cache: "no-store" });
			if (!r.ok) throw httpError(r.status, await r.text());
			video.src = urls.hls;
			video.addEventListener("error", () => fail(new PlayerError("network", "LL-HLS playback failed.")));
		}
		video.play().catch(() => {});
		return {
			failed,
			stop() {
				hls?.destroy();
				video.removeAttribute("src");
				video.load();
				video.remove();
			},
			size: () => ({ width: video.videoWidth, height: video.videoHeight }),
			latency() {
				// Wall clock minus the playing picture's EXT-X-PROGRAM-DATE-TIME.
				const pd = hls ? hls.playingDate : video.getStartDate?.();
				let ms = pd && !isNaN(pd) ? Date.now() - (hls ? pd.getTime() : pd.getTime() + video.currentTime * 1000) : NaN;
				if (ms > 0 && ms < 120000) return { ms, kind: "behind program date-time" };
				if (hls && hls.latency > 0) return { ms: hls.latency * 1000, kind: "behind the live edge" };
				return null;
			},
			unmute() {
				video.muted = false;
			},
		};
	},
};

function httpError(code, body) {
	if (code === 401 || code === 403) return new PlayerError("refused", body || `HTTP ${code}`);
	if (code === 404) return new PlayerError("notfound", body || "no such broadcast");
	// e.g. WHEP of a broadcast with B-frames: retrying will not help.
	if (code === 406 || code === 415) return new PlayerError("unsupported", `${labels[chosen]} cannot play this broadcast.`, `The server says: ${body || `HTTP ${code}`}.`);
	return new PlayerError("server", `The server answered ${code}${body ? `: ${body}` : ""}.`);
}

// ---- the broadcast's life ----

async function lookup() {
	// With auth on the API answers only for what the token may watch.
	const r = await fetch(`/api/broadcasts/${encodePath(path)}`, { cache: "no-store", headers: token ? { Authorization: "Bearer " + token } : {} });
	if (r.status === 404) return null;
	if (!r.ok) throw new Error(`HTTP ${r.status}`);
	return r.json();
}

// describe shows what the broadcast carries under its name.
let hasVideo = true;

function describe(b) {
	const s = summarize(b);
	// Tracks appear with the catalog; until then assume video.
	hasVideo = s.video.length > 0 || s.audio.length === 0;
	const v = s.video.map((t) => `${t.codec}${t.width ? ` ${t.width}×${t.height}` : ""}`);
	const a = [...new Set(s.audio.map((t) => t.codec))];
	$("#info").textContent = [...v, ...a].join(" · ");
}

// waitLive returns once the broadcast exists, saying so while it does not.
async function waitLive() {
	for (let first = true; ; first = false) {
		try {
			const b = await lookup();
			if (b) return describe(b);
			setState("offline");
			overlay("info", `No broadcast “${path}” is live on this server.`,
				"This page starts playing as soon as it goes live. Publish it over RTMP, SRT or WHIP, or from /publish/" + path + ".");
		} catch (e) {
			if (first) overlay("error", "Cannot reach the server.", e.message);
		}
		await sleep(1000);
	}
}

// gone resolves when the API no longer lists the broadcast.
async function gone() {
	for (;;) {
		await sleep(2000);
		try {
			if (!(await lookup())) return;
		} catch {
			// keep playing through an API hiccup
		}
	}
}

function refuse(detail) {
	setState("refused", "");
	status.error = "refused";
	const msg = {
		missing: "This server needs a token to watch.",
		invalid: "The token was refused: it is invalid or has expired.",
		forbidden: "The token does not allow watching this broadcast.",
	}[config.token] || "The server refused the token.";
	overlay("refused", msg, detail || "Paste a subscribe token below, or open this page with ?jwt=TOKEN.");
}

function unsupported(msg, detail = "") {
	setState("unsupported");
	status.error = "unsupported";
	status.detail = detail;
	overlay("unsupported", msg, `${detail} Choose another transport above.`.trim());
}

async function run() {
	for (;;) {
		await waitLive();
		setState("connecting");
		overlay("wait", `Connecting over ${longLabels[chosen]}…`);
		status.frames = 0;
		stalled = false;
		lastFrameAt = 0;
		status.transport = chosen;
		let p;
		try {
			p = await transports[chosen]();
			activePlayerRef.p = p;
			if (!hasVideo) {
				setState("playing", "live");
				overlay("info", "This broadcast is audio only.", "Unmute to listen.");
			}
			const r = await Promise.race([p.failed, gone().then(() => "gone")]);
			if (r === "gone") {
				setState("ended");
				overlay("info", "The broadcast ended.", "This page resumes when it is live again.");
			}
		} catch (e) {
			if (!(e instanceof PlayerError)) e = new PlayerError("error", e.message || String(e));
			status.error = e.kind;
			if (e.kind === "refused") return refuse(`${longLabels[chosen]}: ${e.message}`);
			if (e.kind === "unsupported") return unsupported(e.message, e.detail);
			if (e.kind !== "notfound") {
				setState("error");
				overlay("error", "Playback failed; retrying.", e.message);
			}
		} finally {
			p?.stop();
			activePlayerRef.p = null;
		}
		await sleep(2000);
	}
}

function setupTransportButtons() {
	for (const b of document.querySelectorAll("#transports button")) {
		const t = b.dataset.t;
		b.setAttribute("aria-pressed", String(t === choice));
		if (t !== "auto" && !support[t]) {
			b.title = lacks[t];
			b.classList.add("off");
		}
		b.addEventListener("click", () => {
			const nq = new URLSearchParams(location.search);
			if (t === "auto") nq.delete("transport");
			else nq.set("transport", t);
			location.search = nq.toString();
		});
	}
	const auto = document.querySelector('#transports button[data-t="auto"]');
	if (chosen) auto.textContent = choice === "auto" ? `Auto (${labels[chosen]})` : "Auto";
}

function setupToken() {
	$("#tokenform").addEventListener("submit", (e) => {
		e.preventDefault();
		const v = $("#tokeninput").value.trim();
		if (!v) return;
		const nq = new URLSearchParams(location.search);
		nq.set("jwt", v);
		location.search = nq.toString();
	});
}

function setupUnmute() {
	const b = $("#unmute");
	b.addEventListener("click", () => {
		activePlayerRef.p?.unmute();
		b.classList.add("hidden");
	});
}

// activePlayerRef lets the unmute button and the stats reach the player
// the run loop owns.
const activePlayerRef = { p: null };

function main() {
	$("#name").textContent = path;
	document.title = `${path} — moqgate`;
	$("#urls").append(urlRows([
		["LL-HLS", urls.hls, "any HLS player"],
		["WHEP", urls.whep, "WebRTC playback"],
		["MoQ (WebTransport)", urls.moqWT, `broadcast name ${path}`],
		["MoQ (QUIC)", urls.moqQUIC, `moqgate sub --insecure ${urls.moqQUIC} ${path}`],
	]));
	setupTransportButtons();
	setupToken();
	setupUnmute();
	let fpsFrames = 0, fpsAt = performance.now();
	setInterval(() => {
		checkStall();
		if (performance.now() - fpsAt >= 1000) {
			status.fps = Math.max(0, Math.round(((status.frames - fpsFrames) * 1000) / (performance.now() - fpsAt)));
			[fpsFrames, fpsAt] = [status.frames, performance.now()];
		}
		const p = activePlayerRef.p;
		if (p) {
			const sz = p.size();
			if (sz?.width) [status.width, status.height] = [sz.width, sz.height];
			const l = p.latency();
			if (l && status.frames > 0) [status.latencyMs, status.latencyKind] = [Math.round(l.ms), l.kind];
			$("#unmute").classList.toggle("hidden", !(status.frames > 0 || !hasVideo) || unmuted);
		}
		showStats();
	}, 250);
	$("#unmute").addEventListener("click", () => (unmuted = true));
	if (config.token && !["ok", "off"].includes(config.token)) return refuse();
	if (!chosen) return unsupported("This browser can play none of MoQ, WHEP or LL-HLS.");
	if (!support[chosen]) return unsupported(lacks[chosen]);
	run();
}

let unmuted = false;
main();
