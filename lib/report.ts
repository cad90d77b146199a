// The report contract every run keeps: what a run of a node sends as msg.payload, and what it tells
// its archive (the Home Assistant health and the alert node read it).

/** One thing a run could not do or found wrong; `path` when it concerns one file. */
export interface Problem {
  code: string;
  message: string;
  path?: string;
}

/** A report is a plain JSON object with at least these fields (`kind`: pull, verify, disk, offsite, drill…). */
export interface RunReport {
  kind: string;
  archive: string;
  startedAt: string;
  finishedAt: string;
  problems: Problem[];
}

/** What one run of a node came to: `ok` is false when the run failed or its report lists problems. */
export interface RunOutcome {
  kind: string;
  /** the node that ran (its id), so that several nodes of one kind are told apart */
  source: string;
  ok: boolean;
  at: string;
  report?: RunReport;
  /** the failure when the run did not produce a report */
  error?: { code: string; message: string };
}
