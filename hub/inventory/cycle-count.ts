/**
 * An RFID cycle count: for a while, every tag read in a zone is noted; at the end, each SKU's
 * count per zone is an absolute observation for the stock ledger (StockLedger.observe), with the
 * zone's coverage: the share of the tags believed present at the start that the cycle saw again.
 * A cycle that saw too little of its zone is held for review by the ledger, not applied; SKUs
 * expected but not seen at all are observed as 0, which is how a count finds missing stock.
 */

export interface CycleCountSpec {
  id: string;
  /** Only these zones; every zone when absent. */
  zones?: string[];
  startedAt: number;
  source: string;
}

export interface ZoneCount {
  zone: string;
  sku: string;
  count: number;
  coverage: number;
}

export class CycleCount {
  /** zone -> epc -> sku (undefined: an EPC that is not a known product: counted for coverage only) */
  private readonly seen = new Map<string, Map<string, string | undefined>>();
  /** zone -> epc -> sku, of tags believed present at the start */
  private readonly expected = new Map<string, Map<string, string | undefined>>();
  endedAt: number | undefined;

  constructor(
    readonly spec: CycleCountSpec,
    present: Iterable<{ epc: string; zone: string; sku: string | undefined }>,
  ) {
    for (const tag of present) if (this.covers(tag.zone)) this.note(this.expected, tag.zone, tag.epc, tag.sku);
  }

  covers(zone: string): boolean {
    return this.spec.zones === undefined || this.spec.zones.includes(zone);
  }

  onRead(zone: string, epc: string, sku: string | undefined): void {
    if (this.endedAt === undefined && this.covers(zone)) this.note(this.seen, zone, epc, sku);
  }

  /** Ends the cycle; the counts per zone and SKU, expected-but-unseen SKUs as 0. */
  finish(at: number): ZoneCount[] {
    this.endedAt = at;
    const out: ZoneCount[] = [];
    const zones = new Set([...this.seen.keys(), ...this.expected.keys()]);
    for (const zone of zones) {
      const seen = this.seen.get(zone) ?? new Map<string, string | undefined>();
      const expected = this.expected.get(zone) ?? new Map<string, string | undefined>();
      let found = 0;
      for (const epc of expected.keys()) if (seen.has(epc)) found++;
      // nothing was believed here: the cycle is the first look at the zone, complete as far as anyone knows
      const coverage = expected.size === 0 ? 1 : found / expected.size;
      const counts = new Map<string, number>();
      for (const sku of expected.values()) if (sku !== undefined) counts.set(sku, 0);
      for (const sku of seen.values()) if (sku !== undefined) counts.set(sku, (counts.get(sku) ?? 0) + 1);
      for (const [sku, count] of counts) out.push({ zone, sku, count, coverage });
    }
    return out.sort((a, b) => (a.zone === b.zone ? (a.sku < b.sku ? -1 : 1) : a.zone < b.zone ? -1 : 1));
  }

  /** Tags believed present in a zone at the start that the cycle did not see, with their SKU. */
  missing(zone: string): { epc: string; sku: string | undefined }[] {
    const seen = this.seen.get(zone);
    return [...(this.expected.get(zone) ?? new Map<string, string | undefined>())].filter(([epc]) => !seen?.has(epc)).map(([epc, sku]) => ({ epc, sku }));
  }

  get tagsSeen(): number {
    let n = 0;
    for (const m of this.seen.values()) n += m.size;
    return n;
  }

  private note(into: Map<string, Map<string, string | undefined>>, zone: string, epc: string, sku: string | undefined): void {
    let m = into.get(zone);
    if (!m) into.set(zone, (m = new Map()));
    m.set(epc, sku);
  }
}
