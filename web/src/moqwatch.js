// Bundle entry for dist/moqwatch.js: defines the <moq-watch> custom element
// from @moq/watch (see NOTES.md for what it does and how tests observe it).
import "@moq/watch/element";
