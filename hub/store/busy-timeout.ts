/**
 * How long a statement waits for another connection's lock before SQLITE_BUSY. Its own file so the
 * journal thread can use it without loading the store's opening, migration and salvage code.
 */
export const BUSY_TIMEOUT_MS = 5000;
