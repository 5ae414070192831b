// Authenticated Origin Pulls for one stack's host names: Cloudflare presents
// a client certificate when it connects to the origin, and the proxy serves
// no request without it (infra/proxy/render.ts). The certificate is this
// stack's own, not Cloudflare's shared one: Cloudflare's shared origin-pull
// certificate is presented for every Cloudflare customer's zone, so it proves
// only that a request came through Cloudflare, which the address-range gate
// already does. It is uploaded per host name (not per zone), so stacks that
// share a zone never replace each other's certificate.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";

/** Ten years: no renewal runs unattended (a new certificate must reach Cloudflare and nginx together; see README). */
const VALIDITY_HOURS = 10 * 365 * 24;

export interface OriginPullsArgs {
  /** The zone holding the host names (StackDns.zoneId). */
  zoneId: pulumi.Input<string>;
  /** Every public host name of the stack: Cloudflare presents the certificate to the origin for each. */
  hostnames: readonly string[];
}

export class OriginPulls extends pulumi.ComponentResource {
  /** The certificate nginx trusts (public): the one Cloudflare presents for these host names. */
  readonly certificatePem: pulumi.Output<string>;

  constructor(name: string, args: OriginPullsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("bbaegok:tls:OriginPulls", name, { hostnames: args.hostnames }, opts);
    if (args.hostnames.length === 0) throw new Error(`origin pulls ${name}: no host name to authenticate`);
    const certificate = this.createCertificate(name);
    const upload = this.upload(name, args.zoneId, certificate);
    this.enable(name, args, upload);
    this.certificatePem = certificate.certPem;
    this.registerOutputs({ certificatePem: this.certificatePem, hostnames: args.hostnames });
  }

  private createCertificate(name: string) {
    const key = new tls.PrivateKey(`${name}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
    // Self-signed: nginx trusts exactly this certificate, so no other certificate can be issued that it accepts.
    const certPem = new tls.SelfSignedCert(
      `${name}-certificate`,
      {
        privateKeyPem: key.privateKeyPem,
        subject: { commonName: `${pulumi.getProject()} ${pulumi.getStack()} origin pulls` },
        validityPeriodHours: VALIDITY_HOURS,
        allowedUses: ["digital_signature", "client_auth"],
      },
      { parent: this },
    ).certPem;
    return { certPem, privateKeyPem: key.privateKeyPem };
  }

  private upload(name: string, zoneId: pulumi.Input<string>, certificate: ReturnType<OriginPulls["createCertificate"]>) {
    // The key goes to Cloudflare, which presents it; the SDK keeps it secret in the plan and the state.
    return new cloudflare.AuthenticatedOriginPullsHostnameCertificate(
      `${name}-upload`,
      { zoneId, certificate: certificate.certPem, privateKey: certificate.privateKeyPem },
      { parent: this },
    );
  }

  private enable(name: string, args: OriginPullsArgs, upload: cloudflare.AuthenticatedOriginPullsHostnameCertificate): void {
    for (const hostname of args.hostnames) {
      new cloudflare.AuthenticatedOriginPulls(
        `${name}-${hostname.replace(/[^a-z0-9]+/g, "-")}`,
        { zoneId: args.zoneId, configs: [{ hostname, certId: upload.id, enabled: true }] },
        { parent: this },
      );
    }
  }
}
