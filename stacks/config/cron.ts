// Validation of the five-field cron expressions Debian's cron reads in /etc/cron.d.
// Returns the reason an expression is invalid, or undefined when it is valid.

interface Field {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const FIELDS: readonly Field[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"] },
  // cron accepts 0 and 7 for Sunday.
  { name: "day of week", min: 0, max: 7, names: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"] },
];

const MACROS = new Set(["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"]);

function parseValue(text: string, field: Field): number | undefined {
  if (/^\d+$/.test(text)) return Number(text);
  const index = field.names?.indexOf(text.toLowerCase()) ?? -1;
  if (index < 0) return undefined;
  return field.name === "month" ? index + 1 : index;
}

function fieldProblem(part: string, field: Field): string | undefined {
  for (const item of part.split(",")) {
    const [range, step, extra] = item.split("/");
    if (extra !== undefined || range === undefined || range === "") return `"${item}" is not a valid ${field.name}`;
    if (step !== undefined && !/^[1-9]\d*$/.test(step)) return `step "${step}" in the ${field.name} field must be a positive number`;
    if (range === "*") continue;
    const bounds = range.split("-");
    if (bounds.length > 2) return `"${range}" is not a valid ${field.name} range`;
    const values = bounds.map((b) => parseValue(b, field));
    for (const [i, value] of values.entries()) {
      if (value === undefined) return `"${bounds[i]}" is not a valid ${field.name}`;
      if (value < field.min || value > field.max) return `${field.name} ${value} is out of range ${field.min}-${field.max}`;
    }
    if (values.length === 2 && (values[0] as number) > (values[1] as number)) return `${field.name} range "${range}" runs backwards`;
  }
  return undefined;
}

/**
 * Why an expression is not one cron schedule, or undefined. A line break is
 * refused (a YAML `schedule: |` block ends with one): cron reads one entry per
 * line, and a broken line makes Debian's cron ignore the whole file.
 */
export function cronProblem(expression: string): string | undefined {
  if (/[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]/.test(expression)) {
    return "it spans more than one line or holds a control character: write it on one line, as a plain or quoted YAML string, not a | or > block";
  }
  const trimmed = expression.trim();
  if (MACROS.has(trimmed)) return undefined;
  if (trimmed === "@reboot") return "@reboot is not a schedule";
  const parts = trimmed.split(/\s+/);
  if (parts.length !== FIELDS.length) return `has ${parts.length} fields; cron needs 5 (minute hour day-of-month month day-of-week)`;
  for (const [i, field] of FIELDS.entries()) {
    const problem = fieldProblem(parts[i] as string, field);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * The one form every rendered file uses: one line, fields separated by a
 * single space, no space around it. Throws on an invalid expression.
 */
export function normalCron(expression: string): string {
  const problem = cronProblem(expression);
  if (problem) throw new Error(`"${JSON.stringify(expression).slice(1, -1)}" is not a cron expression: ${problem}`);
  return expression.trim().split(/[ \t]+/).join(" ");
}
