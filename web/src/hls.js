// Bundle entry for dist/hls.js: hls.js as window.Hls, and as the default
// export for pages that import it as a module.
import Hls from "hls.js";

window.Hls = Hls;
export default Hls;
