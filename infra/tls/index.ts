// The certificate the proxy presents for one stack's host names. By default
// the program issues it: a private key and CSR made by @pulumi/tls (the key
// never leaves Pulumi's encrypted state and the server), signed by
// Cloudflare's Origin CA, which Cloudflare trusts when it connects to the
// origin ("Full (strict)"). Or a certificate the operator brings.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import type { StackConfig } from "../../stacks/config/schema.js";

export interface SiteCertificateArgs {
  /**
   * The stack's validated `proxy.tls` config: an Origin CA certificate the program issues, or one provided.
   * @default source "origin-ca", validityDays 5475
   */
  tls: StackConfig["proxy"]["tls"];
  /** Every public host name of the stack; the first is the certificate's common name. */
  hostnames: readonly string[];
  /** The provided certificate's private key (PEM), the secret tlsPrivateKey: required with source "provided", unused otherwise. */
  privateKeyPem?: pulumi.Input<string>;
}

export class SiteCertificate extends pulumi.ComponentResource {
  /** The certificate chain (PEM), leaf first. */
  readonly certificatePem: pulumi.Output<string>;
  /** The private key (PEM); always a secret. */
  readonly privateKeyPem: pulumi.Output<string>;
  /** The names the certificate covers. */
  readonly hostnames: readonly string[];

  constructor(name: string, args: SiteCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
    super("bbaegok:tls:SiteCertificate", name, { source: args.tls.source, hostnames: args.hostnames }, opts);
    if (args.hostnames.length === 0) throw new Error(`certificate ${name}: no host name to certify`);
    this.hostnames = args.hostnames;
    const issued = args.tls.source === "origin-ca" ? this.issueFromOriginCa(name, args.tls.validityDays) : this.provided(name, args.tls.certificate, args.privateKeyPem);
    this.certificatePem = issued.certificatePem;
    this.privateKeyPem = pulumi.secret(issued.privateKeyPem);
    this.registerOutputs({ certificatePem: this.certificatePem, hostnames: this.hostnames });
  }

  private issueFromOriginCa(name: string, validityDays: number) {
    // ECDSA P-256: what Cloudflare's origin-ecc certificates use; small and fast handshakes.
    const key = new tls.PrivateKey(`${name}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
    const request = new tls.CertRequest(
      `${name}-csr`,
      { privateKeyPem: key.privateKeyPem, subject: { commonName: this.hostnames[0] }, dnsNames: [...this.hostnames] },
      { parent: this },
    );
    const certificate = new cloudflare.OriginCaCertificate(
      `${name}-origin-ca`,
      { csr: request.certRequestPem, hostnames: [...this.hostnames], requestType: "origin-ecc", requestedValidity: validityDays },
      // A new certificate before the old one is revoked, so the proxy always has a valid one to serve.
      { parent: this },
    );
    return { certificatePem: certificate.certificate, privateKeyPem: key.privateKeyPem };
  }

  private provided(name: string, certificatePem: string, privateKeyPem: pulumi.Input<string> | undefined) {
    // The stack loader refuses a stack without the key; this guards other callers.
    if (privateKeyPem === undefined) throw new Error(`certificate ${name}: proxy.tls.source "provided" needs the secret tlsPrivateKey`);
    return { certificatePem: pulumi.output(certificatePem), privateKeyPem: pulumi.output(privateKeyPem) };
  }
}
