/**
 * `storehub job create|list|show|cancel|watch`: remote operations through a running hub's API.
 * `watch` draws a progress bar until the job reaches a terminal state and exits 0 only on SUCCEEDED,
 * so scripts can chain on it. Exit codes: 0 ok, 1 the job failed or was refused, 2 bad input or
 * usage, 3 the hub is not reachable.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import type { Command, Option } from 'commander';
import { InvalidArgumentError } from 'commander';
import { JOB_STATUSES, type JobStatus, TERMINAL_STATUSES } from '../ops/job-states.js';
import type { Job, JobSummary } from '../ops/job-view.js';
import { type ApiTarget, apiTargetOrExit, callApi, describeApiError } from './api-client.js';

interface ApiOptions {
  config: string;
  url?: string;
  token?: string;
}

const isTerminal = (status: JobStatus) => TERMINAL_STATUSES.includes(status);
const percent = (progress: number) => `${Math.round(progress * 100)}%`;

function fail(message: string, code: number): never {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

function parseInterval(value: string): number {
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 50) throw new InvalidArgumentError('must be a whole number of milliseconds, at least 50');
  return ms;
}

function parseStatus(value: string): string {
  if (!(JOB_STATUSES as readonly string[]).includes(value)) throw new InvalidArgumentError(`must be one of ${JOB_STATUSES.join(', ')}`);
  return value;
}

async function fetchJob(target: ApiTarget, id: string): Promise<Job> {
  const answer = await callApi(target, `/api/v1/jobs/${encodeURIComponent(id)}`);
  if (answer.status !== 200) fail(describeApiError(answer), answer.status === 401 || answer.status === 403 ? 2 : 1);
  return answer.body as Job;
}

function printJob(job: Job): void {
  const lines = [
    `job ${job.id} (${job.type}, from ${job.source}): ${job.status} ${percent(job.progress)}`,
    ...(job.reason ? [`  reason: ${job.reason}`] : []),
    `  created ${new Date(job.createdAt).toISOString()}, deadline ${new Date(job.deadlineAt).toISOString()}`,
    ...job.executions.map((e) => `  ${e.target}\twave ${e.wave + 1}\t${e.status}${e.reason ? `\t${e.reason}` : ''}`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function jobCommands(job: Command, configOption: () => Option): void {
  const withApi = (command: Command) =>
    command
      .addOption(configOption())
      .option('--url <url>', 'the hub API (default: from the config)')
      .option('--token <token>', 'API token (or STOREHUB_TOKEN); ops scope to create or cancel');

  withApi(
    job
      .command('create')
      .description('submit a job document (JSON; see docs/jobs.md) and print its id')
      .argument('<file>', 'the job document')
      .option('--json', 'print the whole job'),
  ).action(async (file: string, opts: ApiOptions & { json?: boolean }) => {
    let document: unknown;
    try {
      document = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    } catch (err) {
      fail(`cannot read the job document ${file}: ${(err as Error).message}`, 2);
    }
    const answer = await callApi(apiTargetOrExit(opts), '/api/v1/jobs', { method: 'POST', body: document });
    if (answer.status === 400) fail(describeApiError(answer), 2);
    if (answer.status !== 201 && answer.status !== 200) fail(describeApiError(answer), answer.status === 401 || answer.status === 403 ? 2 : 1);
    const created = answer.body as Job;
    if (opts.json) process.stdout.write(`${JSON.stringify(created, null, 2)}\n`);
    else process.stdout.write(`${created.id}\n`);
    process.stderr.write(`job ${created.id} ${created.status}${created.reason ? `: ${created.reason}` : ''}\n`);
    process.exitCode = created.status === 'REJECTED' ? 1 : 0;
  });

  withApi(
    job
      .command('list')
      .description('list jobs, newest first')
      .option('-s, --status <status>', 'only jobs in this status', parseStatus)
      .option('-t, --type <type>', 'only jobs of this type')
      .option('-n, --limit <n>', 'at most this many', '50')
      .option('--json', 'machine-readable output'),
  ).action(async (opts: ApiOptions & { status?: string; type?: string; limit: string; json?: boolean }) => {
    const query = new URLSearchParams({ limit: opts.limit, ...(opts.status ? { status: opts.status } : {}), ...(opts.type ? { type: opts.type } : {}) });
    const answer = await callApi(apiTargetOrExit(opts), `/api/v1/jobs?${query.toString()}`);
    if (answer.status !== 200) fail(describeApiError(answer), answer.status === 400 || answer.status === 401 || answer.status === 403 ? 2 : 1);
    const jobs = answer.body as JobSummary[];
    if (opts.json) process.stdout.write(`${JSON.stringify(jobs, null, 2)}\n`);
    else if (jobs.length === 0) process.stdout.write('no jobs\n');
    else
      for (const j of jobs)
        process.stdout.write(
          `${j.id}\t${j.type}\t${j.status}\t${percent(j.progress)}\t${new Date(j.createdAt).toISOString()}${j.reason ? `\t${j.reason}` : ''}\n`,
        );
  });

  withApi(job.command('show').description('show a job with its per-target executions').argument('<id>').option('--json', 'machine-readable output')).action(
    async (id: string, opts: ApiOptions & { json?: boolean }) => {
      const found = await fetchJob(apiTargetOrExit(opts), id);
      if (opts.json) process.stdout.write(`${JSON.stringify(found, null, 2)}\n`);
      else printJob(found);
    },
  );

  withApi(job.command('cancel').description('cancel a job; targets already running finish').argument('<id>')).action(async (id: string, opts: ApiOptions) => {
    const answer = await callApi(apiTargetOrExit(opts), `/api/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
    if (answer.status !== 200) fail(describeApiError(answer), answer.status === 401 || answer.status === 403 ? 2 : 1);
    process.stdout.write(`job ${id} ${(answer.body as Job).status}\n`);
  });

  withApi(
    job
      .command('watch')
      .description('show progress until the job ends; exit 0 on SUCCEEDED, 1 otherwise')
      .argument('<id>')
      .option('--interval <ms>', 'how often to ask the hub', parseInterval, 1000),
  ).action(async (id: string, opts: ApiOptions & { interval: number }) => {
    const target = apiTargetOrExit(opts);
    let current = await fetchJob(target, id);
    const total = () => current.executions.length;
    const done = () => current.executions.filter((e) => isTerminal(e.status)).length;
    const bar = new cliProgress.SingleBar(
      { format: `job ${id} [{bar}] {percentage}% | {status} | {done}/{targets} targets`, hideCursor: true, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    bar.start(100, Math.round(current.progress * 100), { status: current.status, done: done(), targets: total() });
    while (!isTerminal(current.status)) {
      await sleep(opts.interval);
      current = await fetchJob(target, id);
      bar.update(Math.round(current.progress * 100), { status: current.status, done: done(), targets: total() });
    }
    bar.stop();
    process.stdout.write(`job ${id} ${current.status}${current.reason ? `: ${current.reason}` : ''}\n`);
    process.exitCode = current.status === 'SUCCEEDED' ? 0 : 1;
  });
}
