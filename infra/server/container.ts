// What every container of the platform gets, whatever it runs: a restart
// policy, log rotation, and the labels that say what it is and which stack it
// belongs to. Pure (no Pulumi import): the app's rollout records these in its
// slot specs, and the policy pack reads the role label without loading infra.
// The builder that applies them is platformContainer (./index.ts).

/** The Docker label every container of ours carries to say what it is (the guardrails read it). */
export const ROLE_LABEL = "bbaegok.role";
/** The Docker label naming the stack a container belongs to (`docker ps --filter label=bbaegok.stack=prod`). */
export const STACK_LABEL = "bbaegok.stack";

export type ContainerRole = "proxy" | "app" | "database" | "database-replica" | "metabase" | "metabase-db";

/** Log rotation for every container: a full disk takes the whole server down. */
export const LOG_OPTS: Record<string, string> = { "max-size": "10m", "max-file": "5" };

export interface ContainerLabel {
  label: string;
  value: string;
}

/** The container inputs the platform decides; a component never sets them itself. */
export interface PlatformSettings {
  restart: string;
  logDriver: string;
  logOpts: Record<string, string>;
  labels: ContainerLabel[];
}

/**
 * The platform's settings for a container of `role` in `stack`: restarted by
 * Docker unless stopped on purpose, json-file logs rotated (LOG_OPTS), and the
 * role and stack labels first, then `extraLabels` (the app's slot).
 */
export function platformSettings(role: ContainerRole, stack: string, extraLabels: ContainerLabel[] = []): PlatformSettings {
  return {
    restart: "unless-stopped",
    logDriver: "json-file",
    logOpts: LOG_OPTS,
    labels: [{ label: ROLE_LABEL, value: role }, { label: STACK_LABEL, value: stack }, ...extraLabels],
  };
}

/**
 * The one container that must not start again: the original primary once its
 * replica was promoted (`database.primary: replica`). It is out of date and
 * fenced only until its next start (a MariaDB/MySQL original takes writes
 * again after a restart). So Docker does not restart it after a reboot or a
 * crash (restart "no"), the program leaves it stopped (mustRun false: a
 * stopped container is no drift to put back) and, were it removed by hand and
 * made again by a refreshed up, creates it stopped (start false). Docker and
 * the provider update these in place (the container is not recreated; its
 * role label stays "database"), and nothing else of it changes after that
 * (platformContainer freezes it).
 */
export const RETIRED_INPUTS = { restart: "no", mustRun: false, start: false } as const;
