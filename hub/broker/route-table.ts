/**
 * Direct routes for device messages that only the hub itself listens to.
 *
 * aedes runs every publish through one general pipeline: a promise-based lookup of the stored
 * subscriptions of persistent sessions, an enqueue for them, and an mqemitter fan-out. At full
 * ingest that pipeline cost about a fifth of the hub's CPU, and nearly all of it was spent on topics
 * no client subscribes to: a shelf's weight reports go to the journal and to its driver, not to
 * other devices. This table knows, per topic, whether any subscription other than the hub's
 * in-process handlers can match it:
 * - live subscriptions, seen as they are added to (and removed from) the broker's mqemitter;
 * - stored subscriptions of persistent sessions, asked of the persistence once per topic.
 * When none can, the broker hands the message straight to the matching in-process handlers and
 * reports it published, as aedes' pipeline would have done. Everything else goes through aedes
 * unchanged: retained messages, the broker's own messages, a topic not looked up yet, a topic some
 * client subscribes to.
 *
 * Two rules keep it exact. Every subscription change empties the table, at the call and again when
 * the change has taken effect, and a lookup that overlapped a change is thrown away; so no route
 * outlives a subscription that could alter it. And a topic whose earlier message is still inside
 * aedes' pipeline waits for it, so in-process handlers see each topic's messages in order.
 */
import type { Aedes, Client, PublishPacket } from 'aedes';
import type { MQEmitter } from 'mqemitter';
import { topicMatches } from './topic-acl.js';

/** How mqemitter calls a subscriber: the hub's in-process handlers have this shape too. */
export type Deliver = (packet: PublishPacket, done: () => void) => void;
type Done = (err?: Error | null) => void;

/** The subscription methods of an aedes persistence (promise form, as aedes 1.x calls them). */
export interface SubscriptionStore {
  subscriptionsByTopic(topic: string): Promise<unknown[]>;
  addSubscriptions(...args: unknown[]): unknown;
  removeSubscriptions(...args: unknown[]): unknown;
  cleanSubscriptions(...args: unknown[]): unknown;
}

/** Topics remembered at most; a hub whose devices use more starts over (and looks them up again). */
const MAX_ROUTES = 10_000;

export interface RouteStats {
  /** Messages handed straight to in-process handlers. */
  direct: number;
  /** Device messages sent through aedes' pipeline. */
  pipeline: number;
  /** Times the table was emptied by a subscription change. */
  invalidations: number;
}

export class RouteTable {
  /** Per topic: the in-process handlers to call directly, or null for aedes' pipeline. */
  private readonly routes = new Map<string, Deliver[] | null>();
  private readonly lookingUp = new Set<string>();
  private generation = 0;
  /** Live subscriptions of clients, by filter (a filter may be held by several clients). */
  private readonly clientFilters = new Map<string, number>();
  /** The hub's own handlers and the filter each was subscribed with. */
  private readonly localFilters = new Map<Deliver, string>();
  private readonly local = new WeakSet<Deliver>();
  /** Device messages per topic still inside aedes' pipeline. */
  private readonly inPipeline = new Map<string, number>();
  readonly stats: RouteStats = { direct: 0, pipeline: 0, invalidations: 0 };

  /** Marks a handler as the hub's own before it is subscribed through aedes. */
  markLocal(deliver: Deliver): void {
    this.local.add(deliver);
  }

  /** Observes every subscription added to or removed from the broker's mqemitter. */
  watchEmitter(mq: MQEmitter): void {
    const on = mq.on.bind(mq);
    const removeListener = mq.removeListener.bind(mq);
    mq.on = (topic, listener, callback) => {
      this.invalidate();
      if (this.local.has(listener)) this.localFilters.set(listener, topic);
      else this.clientFilters.set(topic, (this.clientFilters.get(topic) ?? 0) + 1);
      return on(topic, listener, callback);
    };
    // mqemitter removes a listener on the next turn: forget it only once it is gone
    mq.removeListener = (topic, listener, callback) => {
      this.invalidate();
      removeListener(topic, listener, () => {
        if (!this.localFilters.delete(listener)) {
          const n = (this.clientFilters.get(topic) ?? 0) - 1;
          if (n > 0) this.clientFilters.set(topic, n);
          else this.clientFilters.delete(topic);
        }
        this.invalidate();
        callback?.();
      });
    };
  }

  /** Observes stored subscriptions and answers lookups from them. */
  watchPersistence(store: SubscriptionStore): void {
    this.lookUpStored = (topic) => store.subscriptionsByTopic(topic);
    for (const method of ['addSubscriptions', 'removeSubscriptions', 'cleanSubscriptions'] as const) {
      const original = store[method].bind(store);
      store[method] = (...args: unknown[]) => {
        this.invalidate();
        const last = args.length - 1;
        const cb = args[last];
        if (typeof cb === 'function') {
          args[last] = (...result: unknown[]) => {
            this.invalidate();
            (cb as (...r: unknown[]) => void)(...result);
          };
          return original(...args);
        }
        const outcome = original(...args);
        if (outcome instanceof Promise) {
          return outcome.then(
            (value: unknown) => {
              this.invalidate();
              return value;
            },
            (err: unknown) => {
              this.invalidate();
              throw err;
            },
          );
        }
        this.invalidate();
        return outcome;
      };
    }
  }

  /**
   * Routes aedes' publishes of device messages: direct when the table says so, through aedes'
   * pipeline otherwise. aedes calls `broker.publish(packet, client, done)` for every message a
   * client sends (its typed signature omits the client).
   */
  install(aedes: Aedes): void {
    const pipeline = (aedes.publish as unknown as (p: PublishPacket, c: Client | null | Done, d?: Done) => void).bind(aedes);
    const broker = aedes as unknown as { published: (p: PublishPacket, c: Client, d: Done) => void };
    const routed = (packet: PublishPacket, client: Client | null | Done, done?: Done): void => {
      if (typeof client === 'function' || client === null || client === undefined || packet.retain) {
        pipeline(packet, client, done);
        return;
      }
      const topic = packet.topic;
      const handlers = this.directRoute(topic);
      if (handlers) {
        this.stats.direct++;
        for (const deliver of handlers) deliver(packet, noop);
        broker.published(packet, client, done ?? noop);
        aedes.emit('publish', packet as never, client);
        return;
      }
      this.stats.pipeline++;
      this.inPipeline.set(topic, (this.inPipeline.get(topic) ?? 0) + 1);
      pipeline(packet, client, (err) => {
        const n = (this.inPipeline.get(topic) ?? 1) - 1;
        if (n > 0) this.inPipeline.set(topic, n);
        else this.inPipeline.delete(topic);
        done?.(err);
      });
    };
    (aedes as unknown as { publish: typeof routed }).publish = routed;
  }

  /** The handlers to call directly for `topic`, or undefined when the message must go through aedes. */
  directRoute(topic: string): Deliver[] | undefined {
    const route = this.routes.get(topic);
    if (route === undefined) {
      this.lookUp(topic);
      return undefined;
    }
    if (route === null || this.inPipeline.has(topic)) return undefined;
    return route;
  }

  private lookUpStored: (topic: string) => Promise<unknown[]> = () => Promise.resolve([{}]);

  private lookUp(topic: string): void {
    if (this.lookingUp.has(topic)) return;
    // device namespaces never start with '$'; the broker's own topics keep aedes' rules
    if (topic.startsWith('$')) return this.remember(topic, null);
    for (const filter of this.clientFilters.keys()) if (topicMatches(filter, topic)) return this.remember(topic, null);
    const generation = this.generation;
    this.lookingUp.add(topic);
    this.lookUpStored(topic).then(
      (stored) => {
        if (generation !== this.generation) return;
        this.lookingUp.delete(topic);
        this.remember(topic, stored.length > 0 ? null : this.handlersFor(topic));
      },
      () => {
        if (generation === this.generation) this.lookingUp.delete(topic);
      },
    );
  }

  private handlersFor(topic: string): Deliver[] {
    const handlers: Deliver[] = [];
    for (const [deliver, filter] of this.localFilters) if (topicMatches(filter, topic)) handlers.push(deliver);
    return handlers;
  }

  private remember(topic: string, route: Deliver[] | null): void {
    if (this.routes.size >= MAX_ROUTES) this.routes.clear();
    this.routes.set(topic, route);
  }

  private invalidate(): void {
    this.generation++;
    this.stats.invalidations++;
    this.routes.clear();
    this.lookingUp.clear();
  }
}

function noop(): void {}
