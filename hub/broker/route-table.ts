/**
 * Direct routes for device messages that only the hub itself listens to.
 *
 * aedes runs every publish through one general pipeline: a promise-based lookup of the stored
 * subscriptions of persistent sessions, an enqueue for them, and an mqemitter fan-out. At full
 * ingest that pipeline cost about a fifth of the hub's CPU, and nearly all of it was spent on topics
 * no client subscribes to: a shelf's weight reports go to the journal and to its driver, not to
 * other devices. This table knows, per topic, whether any subscription other than the hub's
 * in-process handlers can match it:
 * - live subscriptions: asked of the broker's mqemitter's own matcher, so the answer is whatever
 *   mqemitter would deliver to (counting subscriptions on the side went wrong when aedes removed
 *   the same listener twice, which it does);
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
  /** The listeners mqemitter would call for a topic (its matcher; none until watchEmitter). */
  private match: (topic: string) => Deliver[] = () => [];
  private readonly local = new WeakSet<Deliver>();
  /** Messages per topic still inside aedes' pipeline (device messages and any other). */
  private readonly inPipeline = new Map<string, number>();
  readonly stats: RouteStats = { direct: 0, pipeline: 0, invalidations: 0 };

  /** Marks a handler as the hub's own before it is subscribed through aedes. */
  markLocal(deliver: Deliver): void {
    this.local.add(deliver);
  }

  /** Observes every subscription added to or removed from the broker's mqemitter, and asks its matcher. */
  watchEmitter(mq: MQEmitter): void {
    const matcher = (mq as unknown as { _matcher?: { match(topic: string): Deliver[] } })._matcher;
    if (typeof matcher?.match !== 'function') throw new Error('mqemitter without its matcher: the route table needs mqemitter 7');
    this.match = (topic) => matcher.match(topic);
    const on = mq.on.bind(mq);
    const removeListener = mq.removeListener.bind(mq);
    mq.on = (topic, listener, callback) => {
      this.invalidate();
      return on(topic, listener, callback);
    };
    // mqemitter removes a listener on the next turn: routes are dropped again once it is gone
    mq.removeListener = (topic, listener, callback) => {
      this.invalidate();
      return removeListener(topic, listener, () => {
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
    // Every message that goes through aedes' pipeline is counted per topic, retained and the hub's
    // own included, so a later device message on that topic cannot overtake it on a direct route.
    const throughPipeline = (packet: PublishPacket, client: Client | null, done: Done | undefined): void => {
      const topic = packet.topic;
      this.inPipeline.set(topic, (this.inPipeline.get(topic) ?? 0) + 1);
      pipeline(packet, client, (err) => {
        const n = (this.inPipeline.get(topic) ?? 1) - 1;
        if (n > 0) this.inPipeline.set(topic, n);
        else this.inPipeline.delete(topic);
        done?.(err);
      });
    };
    const routed = (packet: PublishPacket, client: Client | null | Done, done?: Done): void => {
      if (typeof client === 'function') {
        throughPipeline(packet, null, client);
        return;
      }
      if (client === null || client === undefined || packet.retain) {
        throughPipeline(packet, null, done);
        return;
      }
      const handlers = this.directRoute(packet.topic);
      if (handlers) {
        this.stats.direct++;
        for (const deliver of handlers) deliver(packet, noop);
        broker.published(packet, client, done ?? noop);
        aedes.emit('publish', packet as never, client);
        return;
      }
      this.stats.pipeline++;
      throughPipeline(packet, client, done);
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
    if (this.localListeners(topic) === null) return this.remember(topic, null);
    const generation = this.generation;
    this.lookingUp.add(topic);
    this.lookUpStored(topic).then(
      (stored) => {
        if (generation !== this.generation) return;
        this.lookingUp.delete(topic);
        this.remember(topic, stored.length > 0 ? null : this.localListeners(topic));
      },
      () => {
        if (generation === this.generation) this.lookingUp.delete(topic);
      },
    );
  }

  /** The in-process handlers mqemitter would call for `topic`, or null when any client's listener matches too. */
  private localListeners(topic: string): Deliver[] | null {
    let listeners: Deliver[];
    try {
      listeners = this.match(topic);
    } catch {
      return null; // a topic the matcher refuses (too many levels): aedes' pipeline answers it
    }
    for (const listener of listeners) if (!this.local.has(listener)) return null;
    return listeners;
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
