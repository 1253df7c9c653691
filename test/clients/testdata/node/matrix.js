// The Node.js acme-client flow of the client matrix (test/clients/node_test.go): EAB
// registration, http-01 into a webroot, renewal with a new key, account key rollover,
// dns-01 through the test's DNS hook endpoint, revocation. Parameters come from the
// environment; the certificates go to stdout as one JSON object.
'use strict';
const fs = require('fs');
const path = require('path');
const acme = require('acme-client');

const env = (k) => {
    const v = process.env[k];
    if (!v) { throw new Error(`${k} is not set`); }
    return v;
};

async function main() {
    const webroot = env('WEBROOT');
    const dnsHook = env('DNS_HOOK');
    const client = new acme.Client({
        directoryUrl: env('DIRECTORY'),
        accountKey: await acme.crypto.createPrivateEcdsaKey('P-256'),
        externalAccountBinding: { kid: env('EAB_KID'), hmacKey: env('EAB_HMAC') },
    });
    const challengeDir = path.join(webroot, '.well-known', 'acme-challenge');
    const http01 = {
        challengePriority: ['http-01'],
        challengeCreateFn: async (authz, challenge, keyAuthorization) => {
            fs.writeFileSync(path.join(challengeDir, challenge.token), keyAuthorization);
        },
        challengeRemoveFn: async (authz, challenge) => {
            fs.rmSync(path.join(challengeDir, challenge.token), { force: true });
        },
    };
    const dns01 = {
        challengePriority: ['dns-01'],
        challengeCreateFn: async (authz, challenge, keyAuthorization) => {
            const body = new URLSearchParams({ name: `_acme-challenge.${authz.identifier.value}`, value: keyAuthorization });
            const r = await fetch(dnsHook, { method: 'POST', body });
            if (!r.ok) { throw new Error(`dns hook: ${r.status}`); }
        },
        challengeRemoveFn: async () => {},
    };
    const obtain = async (name, how) => {
        const [, csr] = await acme.crypto.createCsr({ altNames: [name] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
        return client.auto({
            csr,
            email: `it@${env('DOMAIN')}`,
            termsOfServiceAgreed: true,
            // The client's own pre-check would ask the system resolver; the server
            // validates through the test's DNS server.
            skipChallengeVerification: true,
            ...how,
        });
    };
    const out = {};
    out.first = await obtain(env('NAME'), http01);
    out.second = await obtain(env('NAME'), http01); // renewal: a new key, a new order
    await client.updateAccountKey(await acme.crypto.createPrivateEcdsaKey('P-256'));
    out.dns = await obtain(env('DNS_NAME'), dns01); // signed with the rolled-over key
    await client.revokeCertificate(out.second, { reason: 4 });
    process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
    process.stderr.write(`acme-client: ${err.stack || err}\n`);
    process.exit(1);
});
