// Bundle entry for dist/shaka.js: Shaka Player's experimental build (the only
// one with the MSF/MoQ manifest parser, registered for "application/msf") as
// window.shaka, and as the default export for pages that import it.
import shaka from "shaka-player/dist/shaka-player.experimental.js";

window.shaka = shaka;
export default shaka;
