/** The driver SDK: the only hub module drivers may import. */
export * from './driver.js';
export * from './errors.js';
export * from './events.js';
export * from './transport.js';
