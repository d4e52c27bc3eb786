// The configuration `tollgate run` uses when no --config is given: an HTTP proxy and a SOCKS5
// proxy on the loopback address only, so a gateway started by mistake serves no one else.

import { type GatewayConfig, loadConfigText } from './load.js';

export const DEFAULT_CONFIG_NAME = '(embedded default config)';

export const DEFAULT_CONFIG_TEXT = `version: 1
# Only local clients: the embedded default policy's protected networks are private ranges,
# which a loopback-only listener never sees.
source_networks: [127.0.0.0/8, ::1/128]
listeners:
  - name: http
    type: http-proxy
    listen: 127.0.0.1:3128
  - name: socks
    type: socks5
    listen: 127.0.0.1:1080
`;

export function loadDefaultConfig(): GatewayConfig {
  return loadConfigText(DEFAULT_CONFIG_TEXT, DEFAULT_CONFIG_NAME, process.cwd());
}
