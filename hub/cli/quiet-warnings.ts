/**
 * Imported first by the CLI. aedes imports its package.json with an import attribute, which Node 20
 * reports as an ExperimentalWarning on stderr; that line would break JSON log consumers. Every other
 * warning is still printed.
 */
process.removeAllListeners('warning');
process.on('warning', (warning) => {
  if (warning.name === 'ExperimentalWarning' && /JSON modules|Import attributes/i.test(warning.message)) return;
  process.stderr.write(`${warning.name}: ${warning.message}\n`);
});
