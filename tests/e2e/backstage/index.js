'use strict';
// app-config.yaml and the catalog file location are resolved from the cwd
process.chdir(__dirname);
// Minimal Backstage backend (new backend system) for tests. Plain JS, no build.
const { createBackend } = require('@backstage/backend-defaults');
const { createBackendModule, coreServices } = require('@backstage/backend-plugin-api');
const {
  authProvidersExtensionPoint,
  createProxyAuthenticator,
  createProxyAuthProviderFactory,
} = require('@backstage/plugin-auth-node');
const { InputError } = require('@backstage/errors');

// Test-only auth provider "testuser": GET|POST /api/auth/testuser/refresh?user=<name>
// issues a Backstage user token for user:default/<name>. Only mounted when
// auth.providers.testuser is present in config (the guest provider is fixed
// to ONE configured user, so this one is needed to get tokens for several users).
const testUserAuthModule = createBackendModule({
  pluginId: 'auth',
  moduleId: 'testuser-provider',
  register(reg) {
    reg.registerInit({
      deps: { providers: authProvidersExtensionPoint },
      async init({ providers }) {
        providers.registerProvider({
          providerId: 'testuser',
          factory: createProxyAuthProviderFactory({
            authenticator: createProxyAuthenticator({
              defaultProfileTransform: async () => ({ profile: {} }),
              initialize: () => undefined,
              async authenticate({ req }) {
                const user = String(req.query.user ?? req.header('x-test-user') ?? '');
                if (!/^[a-z0-9][a-z0-9._-]*$/i.test(user)) {
                  throw new InputError('missing or invalid ?user=<name>');
                }
                return { result: { user } };
              },
            }),
            async signInResolver({ result }, ctx) {
              const entityRef = `user:default/${result.user}`;
              try {
                return await ctx.signInWithCatalogUser({ entityRef });
              } catch {
                // user not (yet) in the catalog: issue a token anyway
                return ctx.issueToken({ claims: { sub: entityRef, ent: [entityRef] } });
              }
            },
          }),
        });
      },
    });
  },
});

const backend = createBackend();
backend.add(import('@backstage/plugin-auth-backend'));
backend.add(import('@backstage/plugin-auth-backend-module-guest-provider'));
backend.add(testUserAuthModule);
backend.add(import('@backstage/plugin-catalog-backend'));
backend.add(import('@backstage/plugin-events-backend'));
backend.add(import('@backstage/plugin-signals-backend'));
backend.add(import('@backstage/plugin-notifications-backend'));
backend.start();
