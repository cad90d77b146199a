// An archive's link to Home Assistant: every run's outcome updates the health snapshot, which goes
// out as retained states; discovery goes out once per connection (and when HA restarts).
import { HealthTracker } from "../../lib/health/tracker";
import { discoveryMessages, HEARTBEAT_SECONDS, removalMessages, stateMessages } from "../../lib/health/discovery";
import type { BackupArchiveNode, HaMqttNode } from "../shared/types";

export interface HealthPublishing {
  tracker: HealthTracker;
  /** a short note for the status of nodes using this archive when HA cannot be reached */
  note(): string | undefined;
  /** removed: the archive node was deleted from the flow, so its entities are deleted from HA */
  close(removed: boolean): Promise<void>;
}

export function publishHealth(archive: BackupArchiveNode, ha: HaMqttNode, options: { staleHours: number; nodeExists: (id: string) => boolean }): HealthPublishing | undefined {
  const link = ha.link;
  if (!link) {
    archive.error(`Home Assistant: ${ha.configError ?? "the ha-mqtt node is not usable"}; health is not published`);
    return undefined;
  }
  const name = archive.archiveName;
  const topics = { discoveryPrefix: ha.discoveryPrefix, baseTopic: ha.baseTopic };
  const tracker = new HealthTracker({
    name,
    open: () => archive.open(),
    staleHours: options.staleHours,
    onChange: (snapshot, problems) => link.put(name, { states: stateMessages(name, snapshot, problems, topics) }),
    onError: (message) => archive.warn(`health: ${message}`),
    sourceExists: options.nodeExists,
  });
  link.put(name, { configs: discoveryMessages(name, topics) });
  void tracker.load();
  const unsubscribe = archive.onRecord((outcome) => void tracker.record(outcome));
  // Staleness moves with the clock, and expire_after in HA needs a sign of life between runs.
  const heartbeat = setInterval(() => void tracker.refresh(), HEARTBEAT_SECONDS * 1000);
  heartbeat.unref();
  return {
    tracker,
    note: () => {
      const s = link.status;
      return s.state === "connected" ? undefined : `HA broker ${s.state}`;
    },
    close: async (removed) => {
      clearInterval(heartbeat);
      unsubscribe();
      await tracker.settled();
      if (removed) await link.remove(name, removalMessages(name, topics));
      else link.forget(name);
    },
  };
}
