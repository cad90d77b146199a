// An archive's health: every run's outcome updates the health snapshot (kept in the archive, read by
// the alert node); with Home Assistant it also goes out as retained states, and discovery goes out
// once per connection (and when HA restarts).
import { EventEmitter } from "node:events";
import { HealthTracker } from "../../lib/health/tracker";
import type { HealthSnapshot, ProblemReason } from "../../lib/health/snapshot";
import { discoveryMessages, HEARTBEAT_SECONDS, removalMessages, stateMessages } from "../../lib/health/discovery";
import type { BackupArchiveNode, HaMqttNode } from "../shared/types";

export interface ArchiveHealth {
  tracker: HealthTracker;
  /** every change (and a heartbeat: staleness moves with the clock); returns the unsubscribe function */
  onChange(listener: (snapshot: HealthSnapshot, problems: ProblemReason[]) => void): () => void;
  close(): Promise<void>;
}

/** Keeps the archive's health snapshot, whether or not it is published to Home Assistant. */
export function trackHealth(archive: BackupArchiveNode, options: { staleHours: number; nodeExists: (id: string) => boolean }): ArchiveHealth {
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const tracker = new HealthTracker({
    name: archive.archiveName,
    open: () => archive.openExisting(),
    staleHours: options.staleHours,
    onChange: (snapshot, problems) => changes.emit("change", snapshot, problems),
    onError: (message) => archive.warn(`health: ${message}`),
    sourceExists: options.nodeExists,
  });
  void tracker.load();
  const unsubscribe = archive.onRecord((outcome) => void tracker.record(outcome));
  // Staleness moves with the clock, and expire_after in HA needs a sign of life between runs.
  const heartbeat = setInterval(() => void tracker.refresh(), HEARTBEAT_SECONDS * 1000);
  heartbeat.unref();
  return {
    tracker,
    onChange: (listener) => {
      changes.on("change", listener);
      return () => changes.off("change", listener);
    },
    close: async () => {
      clearInterval(heartbeat);
      unsubscribe();
      await tracker.settled();
    },
  };
}

export interface HealthPublishing {
  /** a short note for the status of nodes using this archive when HA cannot be reached */
  note(): string | undefined;
  /** removed: the archive node was deleted from the flow, so its entities are deleted from HA */
  close(removed: boolean): Promise<void>;
}

export function publishHealth(archive: BackupArchiveNode, ha: HaMqttNode, health: ArchiveHealth): HealthPublishing | undefined {
  const link = ha.link;
  if (!link) {
    archive.error(`Home Assistant: ${ha.configError ?? "the ha-mqtt node is not usable"}; health is not published`);
    return undefined;
  }
  const name = archive.archiveName;
  const topics = { discoveryPrefix: ha.discoveryPrefix, baseTopic: ha.baseTopic };
  link.put(name, { configs: discoveryMessages(name, topics) });
  const unsubscribe = health.onChange((snapshot, problems) => link.put(name, { states: stateMessages(name, snapshot, problems, topics) }));
  return {
    note: () => {
      const s = link.status;
      return s.state === "connected" ? undefined : `HA broker ${s.state}`;
    },
    close: async (removed) => {
      unsubscribe();
      await health.tracker.settled();
      if (removed) await link.remove(name, removalMessages(name, topics));
      else link.forget(name);
    },
  };
}
