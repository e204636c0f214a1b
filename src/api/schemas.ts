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

const targetRules = (b: { type: string; service?: string; node?: string; all?: boolean; image?: string; registryAuth?: unknown }, ctx: z.RefinementCtx) => {
  const targets = [b.service !== undefined, b.node !== undefined, b.all !== undefined].filter(Boolean).length;
  if (targets !== 1) ctx.addIssue({ code: 'custom', path: ['service'], message: 'give exactly one of service, node or all=true' });
  if (b.all === false) ctx.addIssue({ code: 'custom', path: ['all'], message: 'all must be true when given' });
  if (b.node !== undefined && b.type !== 'clean') ctx.addIssue({ code: 'custom', path: ['node'], message: 'node is a target of clean jobs only' });
  if (b.all !== undefined && b.type === 'update') ctx.addIssue({ code: 'custom', path: ['all'], message: 'update takes one service, not all' });
  if (b.image !== undefined && b.type !== 'update') ctx.addIssue({ code: 'custom', path: ['image'], message: 'image is a parameter of update jobs only' });
  if (b.registryAuth !== undefined && b.type !== 'update') {
    ctx.addIssue({ code: 'custom', path: ['registryAuth'], message: 'registryAuth is a parameter of update jobs only' });
  }
};

const JobFields = {
  service: SERVICE_NAME.optional(),
  node: NODE_NAME.optional(),
  all: z.boolean().optional(),
  image: IMAGE.optional(),
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

