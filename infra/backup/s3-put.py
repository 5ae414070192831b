#!/usr/bin/env python3
# --- the backup's S3 uploader (infra/backup/s3-put.py) ---
# Installed by Pulumi beside backup.sh and run by it with the server's python3
# and Debian's python3-boto3 (boto3 1.26 / botocore 1.29 on Debian 12), and
# nothing else: the AWS CLI Debian 12 ships (2.9.19) can neither add the
# checksum an Object Lock bucket requires nor make a conditional write.
"""Upload standard input or a file to S3, never overwriting an object.

usage: s3-put.py [options] SOURCE s3://BUCKET/KEY      (SOURCE: a file, or - for stdin)

Every write is conditional (If-None-Match: *): S3 refuses it with 412 when an
object already exists at the key, so a backup is never replaced. Every input,
even one part long, goes up as a multipart upload, read and sent a part at a
time (a few parts in memory at most, never the whole stream, nothing on
disk). Every request that carries data has a CRC32 checksum, which S3
requires in a bucket with Object Lock. Empty input is refused: no backup is
empty.

When the completion is refused (412: the key is taken; NoSuchUpload; 409), the
uploader asks S3 whether its upload is still open (ListParts). An upload that
is gone was completed by an earlier try whose answer was lost (botocore
retries a request that timed out or lost its connection), so the object is
this upload's own: a success. An upload still open means another object holds
the key: it is aborted and exit 3. A lone PutObject could not tell the two
apart: the server's key may not read the object that is there.

The object appears only once the whole input has arrived and every
--upstream-status file says 0. With --digest-file, the sha256 and size of
what was uploaded are written there once the object exists (hashed as the
parts are read: no second pass, no other process). On any failure, or on SIGTERM/SIGINT/SIGHUP,
the multipart upload is aborted: nothing is left at the key.

Exit status: 0 uploaded; 1 the upload failed; 2 usage or setup; 3 an object
already exists at the key; 4 not uploaded because a stage before it failed;
128+N killed by signal N. Failures are one line on stderr. Credentials are
read from the shared credentials file only and never printed.
"""

import argparse
import base64
import concurrent.futures
import configparser
import hashlib
import io
import os
import signal
import sys
import time
import zlib

try:
    import boto3
    import botocore
    import botocore.exceptions
    from botocore.config import Config
except ImportError:
    print("s3-put: python3's boto3 module is missing (Debian: apt-get install python3-boto3)", file=sys.stderr)
    sys.exit(2)

MiB = 1024 * 1024
# S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), 10 000 parts.
MIN_PART_MIB, MAX_PART_MIB, MAX_PARTS = 5, 5 * 1024, 10_000
# 16 MiB parts: objects up to 156 GiB; parts being sent plus the one being
# read stay in memory: (2 + 1) x 16 MiB.
DEFAULT_PART_MIB = 16
PARTS_IN_FLIGHT = 2

EXIT_FAILED, EXIT_USAGE, EXIT_EXISTS, EXIT_UPSTREAM = 1, 2, 3, 4
# Besides 412, what S3 may answer a retried completion whose first try did
# complete: the upload is gone (404), or the first try was still completing
# (409, "a conflicting operation").
REFUSED_RETRY = ("NoSuchUpload", "ConditionalRequestConflict")
# How long a completion still under way is waited for: 5 minutes.
COMPLETING_POLL_SECONDS, COMPLETING_WAITS = 5, 60


class Failure(Exception):
    """What failed, as the one line the uploader prints, and its exit status."""

    def __init__(self, message, status=EXIT_FAILED, code=None):
        super().__init__(message)
        self.status = status
        # S3's error code, when S3 answered with one.
        self.code = code


class Interrupted(BaseException):
    """A signal asked the uploader to stop (BaseException: no `except Exception` swallows it)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="s3-put.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", metavar="SOURCE", help="a file, or - for standard input")
    parser.add_argument("destination", metavar="s3://BUCKET/KEY")
    parser.add_argument("--content-type", default="application/octet-stream")
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION"), help="default: $AWS_DEFAULT_REGION")
    parser.add_argument("--endpoint-url", help="an S3 API other than AWS's (a test stand-in)")
    parser.add_argument(
        "--credentials-file",
        default=os.environ.get("AWS_SHARED_CREDENTIALS_FILE"),
        help="shared credentials file, profile [default] (default: $AWS_SHARED_CREDENTIALS_FILE)",
    )
    parser.add_argument("--part-size", type=int, default=DEFAULT_PART_MIB, metavar="MIB", help=f"multipart part size in MiB (default {DEFAULT_PART_MIB})")
    parser.add_argument(
        "--upstream-status",
        action="append",
        default=[],
        metavar="FILE",
        help="a file that holds the exit status of a stage feeding stdin once the input ends; "
        "the object is written only if every such file exists and says 0 (repeatable)",
    )
    parser.add_argument(
        "--digest-file",
        metavar="FILE",
        help="once the object is written, FILE gets \"<sha256 hex> <bytes>\" of what was uploaded (the manifest's figures)",
    )
    args = parser.parse_args(argv)
    if not args.destination.startswith("s3://") or "/" not in args.destination[5:] or args.destination.endswith("/"):
        parser.error(f"expected s3://BUCKET/KEY, got {args.destination}")
    args.bucket, args.key = args.destination[5:].split("/", 1)
    if not MIN_PART_MIB <= args.part_size <= MAX_PART_MIB:
        parser.error(f"--part-size must be {MIN_PART_MIB} to {MAX_PART_MIB} MiB")
    if not args.region:
        parser.error("no region: pass --region or set AWS_DEFAULT_REGION")
    if not args.credentials_file:
        parser.error("no credentials: pass --credentials-file or set AWS_SHARED_CREDENTIALS_FILE")
    return args


def read_credentials(path):
    """The [default] profile's key from a shared credentials file; errors never quote the file."""
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
        section = parser["default"]
        key_id, secret = section["aws_access_key_id"].strip(), section["aws_secret_access_key"].strip()
    except OSError as e:
        raise Failure(f"cannot read the credentials file {path}: {e.strerror}", EXIT_USAGE) from None
    except (configparser.Error, KeyError, UnicodeDecodeError):
        # configparser's messages quote the offending line, which may hold the secret.
        raise Failure(f"the credentials file {path} has no [default] profile with aws_access_key_id and aws_secret_access_key", EXIT_USAGE) from None
    token = section.get("aws_session_token", "").strip() or None
    return key_id, secret, token


def s3_client(args):
    key_id, secret, token = read_credentials(args.credentials_file)
    session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, aws_session_token=token, region_name=args.region)
    config = Config(
        connect_timeout=10,
        read_timeout=120,
        retries={"mode": "standard", "max_attempts": 3},
        max_pool_connections=PARTS_IN_FLIGHT + 2,
        # A stand-in answers on one host name: bucket in the path, not in the name.
        s3={"addressing_style": "path" if args.endpoint_url else "auto"},
    )
    client = session.client("s3", endpoint_url=args.endpoint_url, config=config)
    if "ChecksumAlgorithm" not in client.meta.service_model.operation_model("UploadPart").input_shape.members:
        raise Failure(f"botocore {botocore.__version__} is too old to send checksums (1.23 or later needed)", EXIT_USAGE)

    # botocore 1.29 has no IfNoneMatch parameter: the header goes on the
    # request that creates the object, before it is signed.
    def if_none_match(request, **_):
        request.headers["If-None-Match"] = "*"

    client.meta.events.register("before-sign.s3.CompleteMultipartUpload", if_none_match)
    return client


def read_part(source, size):
    """Up to `size` bytes: fewer only at the end of the input (a buffered
    reader's read waits for the whole size, reading into one bytes object)."""
    return source.read(size)


def body(data):
    """A request body that costs no copy of the part: a BytesIO over bytes
    shares them, and botocore (its CRT signer too) reads it in blocks."""
    return io.BytesIO(data)


def crc32(data):
    """S3's form of a CRC32 checksum: the big-endian value, base64."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


def upstream_failures(paths):
    """What the stages before the uploader say, once the input has ended; empty when all succeeded."""
    failed = []
    for path in paths:
        stage = os.path.basename(path).removesuffix(".status")
        try:
            with open(path, encoding="utf-8") as f:
                status = f.read().strip()
        except OSError:
            failed.append(f"{stage} (no exit status)")
            continue
        if status != "0":
            failed.append(f"{stage} (exit {status})")
    return failed


class Upload:
    def __init__(self, client, args):
        self.client, self.args = client, args
        self.where = f"s3://{args.bucket}/{args.key}"
        self.upload_id = None
        # What was read is what is sent: its sha256 and size, part by part, in order.
        self.sha256, self.size = hashlib.sha256(), 0

    def measure(self, data):
        """Adds a part to the digest: hashlib (OpenSSL) lets other threads
        send parts meanwhile, and the part is hashed where it already is."""
        self.sha256.update(data)
        self.size += len(data)

    def check_upstream(self):
        failed = upstream_failures(self.args.upstream_status)
        if failed:
            # With a multipart upload open, the abort that follows says what became of it.
            nothing = "" if self.upload_id else "; nothing was written"
            raise Failure(f"upload to {self.where} abandoned: a stage before it failed: {', '.join(failed)}{nothing}", EXIT_UPSTREAM)

    def run(self, source):
        part_size = self.args.part_size * MiB
        first = read_part(source, part_size)
        self.measure(first)
        if len(first) < part_size:
            # The input has ended: the stages before are done, nothing need be opened if one failed.
            self.check_upstream()
        if not first:
            raise Failure(f"upload to {self.where} refused: the input is empty; nothing was written")
        self.upload_id = self.call("CreateMultipartUpload", ChecksumAlgorithm="CRC32", **self.object_args())["UploadId"]
        parts = self.send_parts(source, first, part_size)
        self.check_upstream()
        self.complete(parts)
        self.upload_id = None

    def complete(self, parts):
        try:
            self.call(
                "CompleteMultipartUpload",
                Bucket=self.args.bucket,
                Key=self.args.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": parts},
            )
        except Failure as e:
            if not (e.status == EXIT_EXISTS or e.code in REFUSED_RETRY):
                raise
            # A first try still completing (409) is waited for: S3 may take
            # minutes to complete a large upload.
            waits = COMPLETING_WAITS if e.code == "ConditionalRequestConflict" else 0
            while self.still_open(e):
                if waits == 0:
                    raise
                waits -= 1
                time.sleep(COMPLETING_POLL_SECONDS)
            # Completed by an earlier try: S3 forgets an upload once it is
            # completed or aborted, and nothing here aborted it.

    def still_open(self, refusal):
        """Whether the multipart upload is still open (ListParts): True, or False once S3 has forgotten it."""
        try:
            self.client.list_parts(Bucket=self.args.bucket, Key=self.args.key, UploadId=self.upload_id, MaxParts=1)
            return True
        except botocore.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return False
            reason = one_line(e)
        except botocore.exceptions.BotoCoreError as e:
            reason = one_line(e)
        raise Failure(f"{refusal}; whether an earlier try of this upload wrote it cannot be told, ListParts failed: {reason}", refusal.status, refusal.code) from None

    def object_args(self):
        return {"Bucket": self.args.bucket, "Key": self.args.key, "ContentType": self.args.content_type}

    def send_parts(self, source, first, part_size):
        """Sends the parts while the next one is read; returns them as CompleteMultipartUpload lists them."""
        done = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT) as pool:
            in_flight = set()
            try:
                number, data = 1, first
                while data:
                    if number > MAX_PARTS:
                        raise Failure(f"upload to {self.where} failed: the input is larger than {MAX_PARTS} parts of {self.args.part_size} MiB")
                    while len(in_flight) >= PARTS_IN_FLIGHT:
                        finished, in_flight = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
                        done.extend(f.result() for f in finished)
                    # Handed over in a list that send_part empties: the part's
                    # bytes are freed as soon as it is sent, not when the pool
                    # gets round to dropping the task.
                    in_flight.add(pool.submit(self.send_part, number, [data]))
                    del data
                    number, data = number + 1, read_part(source, part_size)
                    self.measure(data)
                for f in concurrent.futures.as_completed(in_flight):
                    done.append(f.result())
            finally:
                # On failure: parts not started are dropped, parts being sent end
                # before the abort, so none lands after it.
                for f in in_flight:
                    f.cancel()
        return sorted(done, key=lambda p: p["PartNumber"])

    def send_part(self, number, holder):
        data = holder.pop()
        checksum = crc32(data)
        answer = self.call("UploadPart", Bucket=self.args.bucket, Key=self.args.key, UploadId=self.upload_id, PartNumber=number, Body=body(data), ChecksumAlgorithm="CRC32", ChecksumCRC32=checksum)
        # S3 answers with the checksum it computed; a stand-in may not.
        if answer.get("ChecksumCRC32", checksum) != checksum:
            raise Failure(f"upload to {self.where} failed: S3 computed another CRC32 for part {number} than the uploader")
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": checksum}

    def call(self, operation, **params):
        """One S3 request; its errors become one line that names the object (and botocore's, the operation)."""
        method = getattr(self.client, botocore.xform_name(operation))
        try:
            return method(**params)
        except botocore.exceptions.ClientError as e:
            error = e.response.get("Error", {})
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 412 or error.get("Code") == "PreconditionFailed":
                raise Failure(f"an object already exists at {self.where}: backups are never overwritten", EXIT_EXISTS, error.get("Code")) from None
            raise Failure(f"upload to {self.where} failed: {one_line(e)}", code=error.get("Code")) from None
        except botocore.exceptions.BotoCoreError as e:
            raise Failure(f"upload to {self.where} failed: {one_line(e)}") from None

    def abort(self):
        """Aborts the multipart upload if one is open; returns what to add to the failure's line."""
        if self.upload_id is None:
            return ""
        try:
            self.client.abort_multipart_upload(Bucket=self.args.bucket, Key=self.args.key, UploadId=self.upload_id)
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            return f"; the multipart upload {self.upload_id} could not be aborted ({one_line(e)}): the bucket's lifecycle rule removes it"
        except Interrupted:
            return f"; the multipart upload {self.upload_id} was left open (stopped while aborting): the bucket's lifecycle rule removes it"
        self.upload_id = None
        return "; the multipart upload was aborted, nothing was written"


def write_digest(path, upload):
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(f"{upload.sha256.hexdigest()} {upload.size}\n")
    except OSError as e:
        # The object is there, but nothing can vouch for it: not a success.
        raise Failure(f"uploaded {upload.where} but cannot write its sha256 to {path}: {e.strerror}") from None


def one_line(error):
    return " ".join(str(error).split())


def main(argv):
    args = parse_args(argv)

    def stop(signum, _frame):
        # Once: the abort that follows must not itself be cut short by a second signal.
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, stop)

    upload = None
    try:
        client = s3_client(args)
        upload = Upload(client, args)
        if args.source == "-":
            upload.run(sys.stdin.buffer)
        else:
            try:
                source = open(args.source, "rb")
            except OSError as e:
                raise Failure(f"cannot read {args.source}: {e.strerror}", EXIT_USAGE) from None
            with source:
                upload.run(source)
        if args.digest_file:
            write_digest(args.digest_file, upload)
        return 0
    except Failure as e:
        print(f"s3-put: {e}{upload.abort() if upload else ''}", file=sys.stderr)
        return e.status
    except Interrupted as e:
        name = signal.Signals(e.signum).name
        print(f"s3-put: upload to s3://{args.bucket}/{args.key} stopped by {name}{upload.abort() if upload else ''}", file=sys.stderr)
        return 128 + e.signum
    except OSError as e:
        # Reading the input failed.
        print(f"s3-put: upload to s3://{args.bucket}/{args.key} failed: cannot read {args.source}: {e.strerror}{upload.abort() if upload else ''}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
