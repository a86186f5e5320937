/**
 * An Impinj reader's HTTP data stream (`GET /data/stream` under the reader's API base): newline-
 * delimited JSON, one event per line, CR-LF keep-alives while the reader has nothing to say (Impinj
 * reader configuration REST API, `data_stream_get` and StreamConfiguration.keepAliveIntervalSeconds).
 * The http-stream transport keeps the response open and reopens it; this splits each response's
 * body into lines, with a fresh splitter per response, so half a line cut off by a dropped
 * connection is never glued to the first line of the next one.
 */
import type { HttpStreamClosed, HttpStreamTransport, Unsubscribe } from '../../hub/sdk/index.js';
import { NdjsonSplitter } from './impinj.js';

export const IMPINJ_STREAM_PATH = '/data/stream';
/** A line longer than this is dropped whole (and counted): the longest real event is a few kB. */
export const MAX_LINE_CHARS = 256 * 1024;

export interface EventStreamHandlers {
  /** A response is streaming. */
  open(): void;
  /** Bytes arrived (events or a keep-alive): the reader is there. */
  alive(): void;
  /** One non-blank line (also what was left when a response ended without a newline). */
  line(text: string): void;
  /** Lines dropped for exceeding MAX_LINE_CHARS. */
  oversized(count: number): void;
  closed(info: HttpStreamClosed): void;
}

export function openEventStream(transport: HttpStreamTransport, handlers: EventStreamHandlers): Unsubscribe {
  let splitter = new NdjsonSplitter(MAX_LINE_CHARS);
  let oversized = 0;
  const countOversized = () => {
    if (splitter.oversized > oversized) handlers.oversized(splitter.oversized - oversized);
    oversized = splitter.oversized;
  };
  return transport.stream(IMPINJ_STREAM_PATH, {
    open: () => {
      splitter = new NdjsonSplitter(MAX_LINE_CHARS);
      oversized = 0;
      handlers.open();
    },
    data: (chunk) => {
      handlers.alive();
      for (const line of splitter.push(chunk)) handlers.line(line);
      countOversized();
    },
    closed: (info) => {
      // whatever the last response left without a newline is a line of its own (most often cut short)
      for (const line of splitter.end()) handlers.line(line);
      countOversized();
      splitter = new NdjsonSplitter(MAX_LINE_CHARS);
      oversized = 0;
      handlers.closed(info);
    },
  });
}
