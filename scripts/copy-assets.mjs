// Copies the non-TypeScript files the built hub reads at run time into dist/.
import { cpSync } from 'node:fs';

cpSync('hub/api/dashboard', 'dist/hub/api/dashboard', { recursive: true });
