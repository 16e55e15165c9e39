// Validate glTF/GLB files with the Khronos glTF validator: prints one JSON line per file
// ({"file", "errors", "warnings", "messages": [[code, pointer, message]...]}). Used by tests/test_export.py.
const fs = require('fs');
const validator = require(process.env.GLTF_VALIDATOR);
(async () => {
  for (const file of process.argv.slice(2)) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {maxIssues: 50});
    const shown = report.issues.messages.filter((m) => m.severity <= 1);
    console.log(JSON.stringify({file, errors: report.issues.numErrors, warnings: report.issues.numWarnings,
                                messages: shown.map((m) => [m.code, m.pointer || '', m.message])}));
  }
})();
