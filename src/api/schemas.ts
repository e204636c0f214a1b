import { z } from 'zod';
import { JOB_TYPES } from '../db/jobs.js';
import { parseImage } from '../jobs/image.js';

export const SERVICE_NAME = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, 'must be a service name or id: letters, digits, "_", "." or "-", at most 63 characters');
export const NODE_NAME = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,252}$/, 'must be a node id or hostname: letters, digits, "_", "." or "-"');
const IMAGE = z
  .string()
  .max(512)
  .refine((s) => parseImage(s) !== null, 'must be an image reference like registry.example.com/app:1.2');

export const RegistryAuthBody = z.strictObject({
  url: z.string().min(1).max(255),
  username: z.string().min(1).max(255),
  password: z.string().min(1).max(4096),
});

const VOLUME_NAME = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$/, 'must be a volume name: letters, digits, "_", "." or "-"');
/** an object key as GET /backups lists it; checked against the archive names when the job is submitted */
const OBJECT_KEY = z
  .string()
  .min(1)
  .max(1024)
  .regex(/^[^\u0000-\u001f\u007f]+$/, 'must be an object key without control characters');

type Fields = {
  type: string;
  service?: string;
  node?: string;
  all?: boolean;
  image?: string;
  registryAuth?: unknown;
  volume?: string;
  key?: string;
  safetyBackup?: boolean;
  to?: string;
};

/** which parameters each job type takes (README "HTTP API") */
const PARAMS_OF: Record<string, readonly string[]> = {
  image: ['update'],
  registryAuth: ['update'],
  volume: ['restore', 'drill'],
  key: ['restore', 'drill'],
  safetyBackup: ['restore'],
  to: ['migrate'],
};

const targetRules = (b: Fields, ctx: z.RefinementCtx) => {
  // restore takes `node` as a parameter (the node whose volume and archives), not as its target
  const nodeIsTarget = b.type !== 'restore';
  const targets = [b.service !== undefined, nodeIsTarget && b.node !== undefined, b.all !== undefined].filter(Boolean).length;
  if (targets !== 1) ctx.addIssue({ code: 'custom', path: ['service'], message: 'give exactly one of service, node or all=true' });
  if (b.all === false) ctx.addIssue({ code: 'custom', path: ['all'], message: 'all must be true when given' });
  if (b.node !== undefined && b.type !== 'clean' && b.type !== 'restore') ctx.addIssue({ code: 'custom', path: ['node'], message: 'node is a target of clean jobs (and a parameter of restore) only' });
  if (b.all !== undefined && ['update', 'restore', 'migrate'].includes(b.type)) ctx.addIssue({ code: 'custom', path: ['all'], message: `${b.type} takes one service, not all` });
  for (const [field, types] of Object.entries(PARAMS_OF)) {
    if (b[field as keyof Fields] !== undefined && !types.includes(b.type)) {
      ctx.addIssue({ code: 'custom', path: [field], message: `${field} is a parameter of ${types.join(' and ')} jobs only` });
    }
  }
  if (b.type === 'migrate' && b.to === undefined) ctx.addIssue({ code: 'custom', path: ['to'], message: 'migrate needs to: the node to move the service to' });
  if (b.type === 'drill' && b.key !== undefined && b.all !== undefined) ctx.addIssue({ code: 'custom', path: ['key'], message: 'key names one archive: give a service, not all' });
};

const JobFields = {
  service: SERVICE_NAME.optional(),
  node: NODE_NAME.optional(),
  all: z.boolean().optional(),
  image: IMAGE.optional(),
  volume: VOLUME_NAME.optional(),
  key: OBJECT_KEY.optional(),
  safetyBackup: z.boolean().optional(),
  to: NODE_NAME.optional(),
};

export const SubmitBody = z
  .strictObject({
    type: z.enum(JOB_TYPES),
    ...JobFields,
    waitRes: z.boolean().optional(),
    registryAuth: RegistryAuthBody.optional(),
  })
  .superRefine(targetRules);
export type SubmitBody = z.infer<typeof SubmitBody>;

const queryBool = z
  .enum(['true', 'false', '1', '0'], { message: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1');

/** the original design's query form: POST /update?service=…&image=…&waitRes=true&token=… */
export const SubmitQuery = z.strictObject({
  token: z.string().max(4096).optional(),
  ...JobFields,
  all: queryBool.optional(),
  safetyBackup: queryBool.optional(),
  waitRes: queryBool.optional(),
});
export type SubmitQuery = z.infer<typeof SubmitQuery>;

export const TokenQuery = z.strictObject({ token: z.string().max(4096).optional() });

/**
 * A whole number written in decimal digits only: Number() would also read `0x10`, `1e3`, ` 7` or `0b1`
 * (so /jobs/0x10 was job 16). `min` bounds it from below.
 */
export const decimal = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d{1,16}$/, 'must be a whole number in decimal digits')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

export const JobIdParams = z.strictObject({ id: decimal(1) });

export const ListQuery = z.strictObject({
  token: z.string().max(4096).optional(),
  type: z.enum(JOB_TYPES).optional(),
  state: z.enum(['queued', 'running', 'succeeded', 'failed', 'canceled']).optional(),
  service: SERVICE_NAME.optional(),
  node: NODE_NAME.optional(),
  limit: decimal(1, 200).default(50),
  before: decimal(1).optional(),
});
export type ListQuery = z.infer<typeof ListQuery>;

export const StatusQuery = z.strictObject({
  token: z.string().max(4096).optional(),
  service: SERVICE_NAME,
  logs: decimal(0, 1000).default(0),
});

