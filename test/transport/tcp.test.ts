import { once } from 'node:events';
import { connect } from 'node:net';
import { TcpTransport } from '../../src/transport/tcp.js';
import { transportContract } from './contract.js';

/** Plain TCP (`mqtt://`) keeps the transport contract. */

const transport = new TcpTransport();

transportContract('tcp', {
  secure: false,
  listen: (handler) => transport.listen(new URL('mqtt://127.0.0.1:0'), handler),
  async connect(listener) {
    const socket = connect({ host: '127.0.0.1', port: listener.port });
    await once(socket, 'connect');
    return socket;
  },
});
