// Stand-in for the aws plugin: the S3 backup bucket, its settings and the two
// IAM identities are recorded, never created. AWS's API cannot be reached from
// here and the real provider cannot be built (it carries hundreds of patches
// to its Terraform upstream).
import { digest, replaceRule, secret, type Props, type StandInSpec } from "./recorder.js";
import { pluginVersion } from "./versions.js";

const ACCOUNT = "000000000000";

const COMPUTED: Record<string, readonly string[]> = {
  "aws:s3/bucket:Bucket": ["arn", "bucketDomainName", "bucketRegionalDomainName", "hostedZoneId"],
  "aws:iam/user:User": ["arn", "uniqueId"],
  "aws:iam/accessKey:AccessKey": ["secret", "createDate", "status"],
};

// What the aws provider cannot change in place, of the inputs this program sets (its schema's ForceNew).
const REPLACE: Record<string, (changed: readonly string[]) => string[]> = {
  "aws:s3/bucket:Bucket": replaceRule({ forceNew: ["bucket", "bucketPrefix", "objectLockEnabled", "region"] }),
  "aws:iam/userPolicy:UserPolicy": replaceRule({ forceNew: ["user", "name", "namePrefix"] }),
  "aws:iam/accessKey:AccessKey": replaceRule({ forceNew: ["user", "pgpKey"] }),
};
// Every bucket setting resource is tied to its bucket: a new bucket is a new setting.
const BUCKET_SETTING = replaceRule({ forceNew: ["bucket", "expectedBucketOwner", "region"] });

function create(type: string, urn: string, inputs: Props) {
  const str = (key: string) => String(inputs[key] ?? "");
  switch (type) {
    case "aws:s3/bucket:Bucket":
      // The real provider's id is the bucket's name; the program passes bucket.id to every bucket setting.
      return {
        id: str("bucket"),
        outs: { arn: `arn:aws:s3:::${str("bucket")}`, bucketDomainName: `${str("bucket")}.s3.amazonaws.com`, bucketRegionalDomainName: `${str("bucket")}.s3.${str("region")}.amazonaws.com`, hostedZoneId: "Z3W03O7B5YMIYP" },
      };
    case "aws:iam/user:User":
      return { id: str("name"), outs: { arn: `arn:aws:iam::${ACCOUNT}:user${str("path") || "/"}${str("name")}`, uniqueId: `AIDA${digest(16, urn).toUpperCase()}` } };
    case "aws:iam/userPolicy:UserPolicy":
      return { id: `${str("user")}:${str("name")}` };
    case "aws:iam/accessKey:AccessKey":
      return { id: `AKIA${digest(16, urn).toUpperCase()}`, outs: { secret: secret(`standin${digest(32, "secret", urn)}`), createDate: "2026-01-01T00:00:00Z", status: "Active" } };
    default:
      // Bucket settings: the real provider's id is the bucket name.
      return { id: typeof inputs["bucket"] === "string" ? str("bucket") : digest(20, urn) };
  }
}

export const aws: StandInSpec = {
  name: "aws",
  version: pluginVersion("aws"),
  description: "STAND-IN for the aws provider (bbaegok-infra engine build): records every input as the output with a deterministic id; nothing is created in AWS and nothing is validated as AWS would.",
  create,
  computedKeys: (type) => COMPUTED[type] ?? [],
  replaces: (type, changed) => (REPLACE[type] ?? (type.startsWith("aws:s3/bucket") ? BUCKET_SETTING : () => []))(changed),
};
