// Backup schedules in the stack's time zone. Debian's cron has no CRON_TZ: the
// cron entry runs every minute and the script asks "is the schedule due now in
// TIMEZONE?" (common.bash, schedule_is_due). This is the same rule in
// TypeScript, for the status command's "is the newest backup overdue?", and
// the tests hold the two to the same answers.
// No Pulumi import.
import { cronProblem } from "../../stacks/config/cron.js";

const MACROS: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};
const MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/**
 * A valid cron expression as five numeric fields (macros expanded, month and
 * day names as numbers), the only form the bash side has to understand.
 */
export function normalizeSchedule(expression: string): string {
  const problem = cronProblem(expression);
  if (problem) throw new Error(`backup schedule "${expression}" is not a cron expression: ${problem}`);
  const trimmed = expression.trim();
  const fields = (MACROS[trimmed] ?? trimmed).split(/\s+/);
  const byName = (names: readonly string[], offset: number) => (text: string) =>
    text.replace(/[a-z]{3}/gi, (name) => String(names.indexOf(name.toLowerCase()) + offset));
  fields[3] = byName(MONTHS, 1)(fields[3] as string);
  fields[4] = byName(DAYS, 0)(fields[4] as string);
  return fields.join(" ");
}

const RANGES: readonly [number, number][] = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
];

function fieldMatches(value: number, field: string, [min, max]: [number, number]): boolean {
  return field.split(",").some((item) => {
    const [range = "*", stepText] = item.split("/");
    const step = stepText === undefined ? 1 : Number(stepText);
    let lo: number;
    let hi: number;
    if (range === "*") [lo, hi] = [min, max];
    else if (range.includes("-")) [lo, hi] = range.split("-").map(Number) as [number, number];
    else [lo, hi] = [Number(range), stepText === undefined ? Number(range) : max];
    return value >= lo && value <= hi && (value - lo) % step === 0;
  });
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The wall-clock fields of `date` in `timeZone`. */
function wallClock(date: Date, timeZone: string): { minute: number; hour: number; day: number; month: number; weekday: number } {
  let formatter = formatters.get(timeZone);
  if (!formatter) {
    formatter = new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", minute: "numeric", hour: "numeric", day: "numeric", month: "numeric", weekday: "short" });
    formatters.set(timeZone, formatter);
  }
  const parts = formatter.formatToParts(date);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return {
    minute: Number(part("minute")),
    hour: Number(part("hour")),
    day: Number(part("day")),
    month: Number(part("month")),
    weekday: DAYS.indexOf(part("weekday").toLowerCase()),
  };
}

/** Whether a normalized schedule fires in the minute of `date`, read in `timeZone` (cron's rules). */
export function scheduleMatches(schedule: string, date: Date, timeZone: string): boolean {
  const f = schedule.split(" ") as [string, string, string, string, string];
  const t = wallClock(date, timeZone);
  if (!fieldMatches(t.minute, f[0], RANGES[0]!) || !fieldMatches(t.hour, f[1], RANGES[1]!) || !fieldMatches(t.month, f[3], RANGES[3]!)) return false;
  const dayOfMonth = fieldMatches(t.day, f[2], RANGES[2]!);
  const dayOfWeek = fieldMatches(t.weekday, f[4], RANGES[4]!) || (t.weekday === 0 && fieldMatches(7, f[4], RANGES[4]!));
  // When both day fields are restricted, cron runs on either.
  return !f[2].startsWith("*") && !f[4].startsWith("*") ? dayOfMonth || dayOfWeek : dayOfMonth && dayOfWeek;
}

/**
 * The latest minute at or before `before` at which the schedule fired, looking
 * back at most `withinDays`; undefined when it never fired in that window.
 */
export function lastFiring(schedule: string, timeZone: string, before: Date, withinDays = 400): Date | undefined {
  const minute = 60_000;
  let t = Math.floor(before.getTime() / minute) * minute;
  const stop = t - withinDays * 24 * 60 * minute;
  for (; t >= stop; t -= minute) {
    if (scheduleMatches(schedule, new Date(t), timeZone)) return new Date(t);
  }
  return undefined;
}

/**
 * The longest wait between two consecutive firings of a normalized schedule,
 * in wall-clock minutes over five years (leap days included). A wall clock
 * with daylight saving time can stretch one gap by an hour; the grace of
 * `allowedBackupAgeMs` covers that.
 */
export function longestIntervalMs(schedule: string): number {
  const f = schedule.split(" ") as [string, string, string, string, string];
  const values = (field: string, range: [number, number]) => {
    const out: number[] = [];
    for (let v = range[0]; v <= range[1]; v++) if (fieldMatches(v, field, range)) out.push(v);
    return out;
  };
  const minutes = values(f[0], RANGES[0]!);
  const hours = values(f[1], RANGES[1]!);
  const minuteMs = 60_000;
  const dayMs = 24 * 60 * minuteMs;
  const start = Date.UTC(2024, 0, 1);
  const days = 5 * 366;
  let previous: number | undefined;
  let longest = 0;
  for (let d = 0; d < days; d++) {
    // Wall-clock arithmetic in UTC: the date's fields, never a zone's offset.
    const day = new Date(start + d * dayMs);
    if (!scheduleMatches(`0 0 ${f[2]} ${f[3]} ${f[4]}`, day, "UTC")) continue;
    for (const h of hours) {
      for (const m of minutes) {
        const t = day.getTime() + (h * 60 + m) * minuteMs;
        if (previous !== undefined) longest = Math.max(longest, t - previous);
        previous = t;
      }
    }
  }
  return previous === undefined || longest === 0 ? days * dayMs : longest;
}

/**
 * How long past a backup's start the next good backup may take to land: the
 * run it should have been replaced by, plus this grace for that run's own
 * duration, a retry by hand, and a daylight-saving shift of an hour.
 */
export const BACKUP_GRACE_MS = 2 * 60 * 60_000;

/**
 * The age past which the newest good backup is stale: the longest interval
 * of `backup.schedule` plus `BACKUP_GRACE_MS` (a daily schedule allows 26 h).
 * The status command and the restore drill judge by this same number.
 */
export function allowedBackupAgeMs(expression: string): number {
  return longestIntervalMs(normalizeSchedule(expression)) + BACKUP_GRACE_MS;
}
