// GET /publish/{broadcast}: publishes the camera and microphone, or a
// screen, over WHIP (RFC 9725) with H.264 or VP8 and Opus. The state is
// kept in window.__publish for scripts and tests.
import { $, config, broadcastURLs, urlRows, encodePath, fmtBitrate, codecName, sleep, iceGathered } from "/ui/common.js";

const q = new URLSearchParams(location.search);
const status = { state: "idle", codec: "", framesSent: 0, width: 0, height: 0, bitrate: 0, error: "", resource: "", deleteStatus: 0 };
window.__publish = status;

const choices = { source: q.get("source") === "screen" ? "screen" : "camera", codec: q.get("codec") === "vp8" ? "vp8" : "h264" };
let session = null; // {pc, media, resource, timer}

function setState(s, cls = "") {
	status.state = s;
	$("#state").textContent = s;
	$("#state").className = `badge ${cls}`;
}

function note(text, cls = "") {
	const n = $("#note");
	n.textContent = text;
	n.className = `note ${cls}`;
	n.classList.toggle("hidden", !text);
}

function segmented(id, key) {
	for (const b of document.querySelectorAll(`#${id} button`)) {
		b.setAttribute("aria-pressed", String(b.dataset.v === choices[key]));
		b.addEventListener("click", () => {
			if (session) return;
			choices[key] = b.dataset.v;
			for (const o of document.querySelectorAll(`#${id} button`)) o.setAttribute("aria-pressed", String(o === b));
		});
	}
}

function broadcastName() {
	return $("#bname").value.trim().replace(/^\/+|\/+$/g, "");
}

async function capture() {
	if (!navigator.mediaDevices) throw new Error("This page needs a secure context (https:// or http://localhost) to use the camera.");
	if (choices.source === "screen") {
		if (!navigator.mediaDevices.getDisplayMedia) throw new Error("This browser cannot capture the screen.");
		return navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 30 }, audio: true });
	}
	return navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720, frameRate: 30 }, audio: true });
}

async function start() {
	const name = broadcastName();
	if (!name) return note("Give the broadcast a name, e.g. live/test.", "bad");
	if (typeof RTCPeerConnection !== "function") return note("This browser has no WebRTC.", "bad");
	if (name !== config.broadcast) history.replaceState(null, "", `/publish/${encodePath(name)}${location.search}`);
	const token = $("#token").value.trim();
	const u = broadcastURLs(name, token);
	$("#start").disabled = true;
	setState("starting");
	note("");
	status.error = "";
	let media, pc;
	try {
		media = await capture();
		$("#preview").srcObject = media;
		$("#overlay").classList.add("hidden");
		pc = new RTCPeerConnection();
		const [vt] = media.getVideoTracks();
		const [at] = media.getAudioTracks();
		const vinit = { direction: "sendonly", streams: [media] };
		if ($("#simulcast").checked) vinit.sendEncodings = [{ rid: "h" }, { rid: "l", scaleResolutionDownBy: 2 }];
		const vtx = pc.addTransceiver(vt, vinit);
		if (at) pc.addTransceiver(at, { direction: "sendonly", streams: [media] });
		const want = `video/${choices.codec}`;
		const caps = RTCRtpSender.getCapabilities("video").codecs.filter((c) => c.mimeType.toLowerCase() === want);
		if (!caps.length) throw new Error(`This browser cannot send ${want}.`);
		vtx.setCodecPreferences(caps);
		await pc.setLocalDescription(await pc.createOffer());
		await iceGathered(pc);
		const headers = { "Content-Type": "application/sdp" };
		if (token) headers.Authorization = "Bearer " + token;
		const resp = await fetch(u.whip, { method: "POST", headers, body: pc.localDescription.sdp });
		const body = await resp.text(); // SDP: keep the final CRLF
		if (resp.status !== 201) {
			const why = resp.status === 401 ? "the token is missing or invalid" : resp.status === 403 ? "the token does not allow publishing here"
				: resp.status === 409 ? "someone is already publishing this broadcast" : body.trim();
			throw new Error(`The server refused to publish (${resp.status}): ${why}.`);
		}
		const resource = new URL(resp.headers.get("Location"), u.whip).toString();
		await pc.setRemoteDescription({ type: "answer", sdp: body });
		session = { pc, media, resource, token, timer: setInterval(() => stats(pc), 1000) };
		status.resource = resource;
		pc.onconnectionstatechange = () => {
			if (pc.connectionState === "failed") stop("The WebRTC connection failed.");
		};
		vt.addEventListener("ended", () => stop("The capture ended."));
		setState("live", "live");
		$("#stop").disabled = false;
		showLinks(name);
		// The publish token is not a viewer's token: the links carry none.
		note(`Publishing over WHIP.${config.auth ? " Viewers need a subscribe token (?jwt=) to watch." : ""}`, "ok");
	} catch (e) {
		pc?.close();
		media?.getTracks().forEach((t) => t.stop());
		$("#preview").srcObject = null;
		$("#overlay").classList.remove("hidden");
		status.error = e.message || String(e);
		setState("error");
		note(status.error, "bad");
		$("#start").disabled = false;
	}
}

async function stats(pc) {
	const report = await pc.getStats();
	let frames = 0, bytes = 0, w = 0, hh = 0, codec = "", audio = false;
	report.forEach((s) => {
		if (s.type === "outbound-rtp" && s.kind === "video") {
			frames += s.framesSent || 0;
			bytes += s.bytesSent || 0;
			if ((s.frameWidth || 0) > w) [w, hh] = [s.frameWidth, s.frameHeight];
			if (s.codecId && report.get(s.codecId)) codec = report.get(s.codecId).mimeType.replace("video/", "");
		}
		if (s.type === "outbound-rtp" && s.kind === "audio") {
			bytes += s.bytesSent || 0;
			audio = true;
		}
	});
	const now = performance.now();
	if (status.lastBytes !== undefined) status.bitrate = ((bytes - status.lastBytes) * 8000) / (now - status.lastAt);
	Object.assign(status, { framesSent: frames, width: w, height: hh, codec, audio, lastBytes: bytes, lastAt: now });
	$("#s-codec").textContent = codec ? `${codecName(codec)}${audio ? " + Opus" : ""}` : "–";
	$("#s-resolution").textContent = w ? `${w}×${hh}` : "–";
	$("#s-bitrate").textContent = fmtBitrate(status.bitrate);
	$("#s-frames").textContent = String(frames);
}

// stop ends the WHIP session: DELETE first (so the server ends the
// broadcast at once), then the peer connection and the capture.
async function stop(why = "", leaving = false) {
	const s = session;
	session = null;
	if (!s) return;
	clearInterval(s.timer);
	const del = fetch(s.resource, { method: "DELETE", headers: s.token ? { Authorization: "Bearer " + s.token } : {}, keepalive: true })
		.then((r) => (status.deleteStatus = r.status), () => (status.deleteStatus = -1));
	if (!leaving) await Promise.race([del, sleep(2000)]);
	s.pc.close();
	s.media.getTracks().forEach((t) => t.stop());
	$("#preview").srcObject = null;
	$("#overlay").classList.remove("hidden");
	$("#start").disabled = false;
	$("#stop").disabled = true;
	status.lastBytes = undefined;
	setState(why ? "stopped" : "idle");
	note(why || "Stopped.", why ? "bad" : "");
}

function showLinks(name) {
	const u = broadcastURLs(name);
	$("#urls").replaceWith(Object.assign(urlRows([["Watch page", u.watch], ["LL-HLS", u.hls], ["WHEP", u.whep]]), { id: "urls" }));
	$("#watchlink").href = u.watch;
	$("#links").classList.remove("hidden");
}

function main() {
	$("#name").textContent = config.broadcast;
	$("#bname").value = config.broadcast;
	$("#token").value = q.get("jwt") || "";
	if (!config.auth && !q.get("jwt")) $("#tokenrow").querySelector("input").placeholder = "not needed: this server has auth off";
	$("#simulcast").checked = q.get("simulcast") === "1";
	segmented("source", "source");
	segmented("codec", "codec");
	$("#form").addEventListener("submit", (e) => {
		e.preventDefault();
		if (!session) start();
	});
	$("#stop").addEventListener("click", () => stop());
	addEventListener("pagehide", () => stop("", true));
	if (!window.isSecureContext) note("Browsers allow the camera only on https:// or http://localhost pages.", "bad");
}

main();
