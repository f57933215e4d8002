#!/usr/bin/env node
'use strict';
/*
 * Independent SMSC test peer for smsblast, built on the third-party npm
 * package `smpp` (node-smpp, pinned in package.json).
 *
 * Usage:  node server.js [port]
 *
 * Environment:
 *   SMSC_HOST             listen address (default 127.0.0.1; loopback only)
 *   SMSC_PORT             port when no argv port is given (default 0 = any free)
 *   SMSC_SYSTEM_ID        accepted system_id (default "smppclient1")
 *   SMSC_PASSWORD         accepted password  (default "password")
 *   SMSC_RECEIPT_DELAY_MS delay before a delivery receipt is sent (default 0)
 *   SMSC_IGNORE_STDIN=1   do not exit when stdin closes (manual runs only)
 *
 * stdout protocol (one line each):
 *   LISTENING <port>       once the socket is bound
 *   STATS {...json...}     on SIGTERM/SIGINT/stdin EOF (then exit 0), and
 *                          whenever a line "stats" is written to stdin
 * Everything else (diagnostics) goes to stderr.
 */

const smpp = require('smpp');

// --- node-smpp quirk workaround -------------------------------------------
// node-smpp decodes short_message / message_payload through its own GSM 03.38
// table when data_coding is 0 (it maps the *ASCII* byte 0x40 '@' to GSM char
// 0x40 '¡', 0x24 '$' to '¤', 0x5F '_' to '§', ...). A real SMSC must look at the
// octets the ESME sent, so we turn that decoding off for submit_sm and get the
// raw Buffer. (We only ever *encode* Buffers, which the filter passes through.)
delete smpp.commands.submit_sm.params.short_message.filter;
delete smpp.tlvs.message_payload.filter;

const HOST = process.env.SMSC_HOST || '127.0.0.1';
const PORT = Number(process.argv[2] !== undefined ? process.argv[2] : process.env.SMSC_PORT || 0);
const SYSTEM_ID = process.env.SMSC_SYSTEM_ID !== undefined ? process.env.SMSC_SYSTEM_ID : 'smppclient1';
const PASSWORD = process.env.SMSC_PASSWORD !== undefined ? process.env.SMSC_PASSWORD : 'password';
const RECEIPT_DELAY_MS = Number(process.env.SMSC_RECEIPT_DELAY_MS || 0);

if (!/^(127\.\d+\.\d+\.\d+|::1|localhost)$/.test(HOST)) {
	process.stderr.write('refusing to listen on non-loopback address ' + HOST + '\n');
	process.exit(2);
}
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
	process.stderr.write('bad port ' + process.argv[2] + '\n');
	process.exit(2);
}

const stats = {
	submits: 0,            // submit_sm accepted (ESME_ROK)
	submit_rejects: 0,     // submit_sm answered with an error status
	binds: 0,              // successful binds
	bind_failures: 0,      // binds refused (bad system_id/password, already bound)
	receipts_sent: 0,      // deliver_sm receipts written to a socket
	receipt_acks: 0,       // deliver_sm_resp received with status 0
	receipt_nacks: 0,      // deliver_sm_resp received with a non-zero status
	receipts_pending: 0,   // receipts waiting for a receiver to bind
	enquire_links: 0,      // enquire_link answered
	unbinds: 0,            // unbind answered
	generic_nacks: 0,      // generic_nack sent for unknown command ids
	unsupported: 0,        // known commands answered with ESME_RINVCMDID
	sessions: 0,           // TCP connections accepted
	errors: 0              // socket / framing errors
};

let nextMessageId = 0;
const pendingReceipts = new Map(); // system_id -> [deliver_sm options]

const BIND_MODES = {
	bind_transmitter: {tx: true, rx: false},
	bind_receiver: {tx: false, rx: true},
	bind_transceiver: {tx: true, rx: true}
};

function log(msg) {
	process.stderr.write('[nodesmpp] ' + msg + '\n');
}

function pad2(n) {
	return ('0' + n).slice(-2);
}

// SMPP receipt date format YYMMDDhhmm (UTC).
function receiptDate(d) {
	return pad2(d.getUTCFullYear() % 100) + pad2(d.getUTCMonth() + 1) + pad2(d.getUTCDate()) +
		pad2(d.getUTCHours()) + pad2(d.getUTCMinutes());
}

// Text of a submitted message, from the raw octets, as a printable-ASCII string.
function messageText(pdu) {
	let body = Buffer.isBuffer(pdu.short_message) ? pdu.short_message : Buffer.alloc(0);
	if (!body.length && Buffer.isBuffer(pdu.message_payload)) {
		body = pdu.message_payload;
	}
	if ((pdu.esm_class & 0x40) && body.length) { // UDHI: strip the user data header
		body = body.slice(Math.min(body.length, body[0] + 1));
	}
	let text;
	if ((pdu.data_coding & 0xff) === 0x08) { // UCS2, big-endian
		const even = Buffer.from(body.slice(0, body.length - (body.length % 2)));
		text = even.swap16().toString('utf16le');
	} else {
		text = body.toString('latin1');
	}
	return text.replace(/[^\x20-\x7e]/g, '?');
}

function findReceiver(systemId, preferred) {
	if (preferred && preferred.bound && preferred.bound.rx && !preferred.closed) {
		return preferred;
	}
	for (const s of server.sessions) {
		if (s.bound && s.bound.rx && s.bound.system_id === systemId && !s.closed) {
			return s;
		}
	}
	return null;
}

function sendReceipt(session, options) {
	const pdu = new smpp.PDU('deliver_sm', options);
	if (session.send(pdu)) {
		stats.receipts_sent++;
		return true;
	}
	return false;
}

function deliverReceipt(systemId, origin, options) {
	const target = findReceiver(systemId, origin);
	if (target && sendReceipt(target, options)) {
		return;
	}
	// No receiver bound right now: keep it, as a store-and-forward SMSC would.
	if (!pendingReceipts.has(systemId)) {
		pendingReceipts.set(systemId, []);
	}
	pendingReceipts.get(systemId).push(options);
	stats.receipts_pending++;
}

function flushPending(session) {
	const queue = pendingReceipts.get(session.bound.system_id);
	while (queue && queue.length && !session.closed) {
		const options = queue[0];
		if (!sendReceipt(session, options)) {
			break;
		}
		queue.shift();
		stats.receipts_pending--;
	}
}

function buildReceipt(pdu, messageId) {
	const now = receiptDate(new Date());
	const text = messageText(pdu).slice(0, 20);
	const body = 'id:' + messageId + ' sub:001 dlvrd:001 submit date:' + now +
		' done date:' + now + ' stat:DELIVRD err:000 text:' + text;
	return {
		// deliver_sm goes from the handset back to the ESME: addresses swap.
		source_addr_ton: pdu.dest_addr_ton,
		source_addr_npi: pdu.dest_addr_npi,
		source_addr: pdu.destination_addr,
		dest_addr_ton: pdu.source_addr_ton,
		dest_addr_npi: pdu.source_addr_npi,
		destination_addr: pdu.source_addr,
		esm_class: 0x04,              // SMSC delivery receipt
		data_coding: 0x00,
		short_message: Buffer.from(body, 'latin1'),
		receipted_message_id: messageId,
		message_state: 2              // DELIVERED
	};
}

function handleBind(session, pdu) {
	if (session.bound) {
		stats.bind_failures++;
		session.send(pdu.response({command_status: smpp.ESME_RALYBND}));
		return;
	}
	let status = smpp.ESME_ROK;
	if (pdu.system_id !== SYSTEM_ID) {
		status = smpp.ESME_RINVSYSID;
	} else if (pdu.password !== PASSWORD) {
		status = smpp.ESME_RINVPASWD;
	}
	if (status !== smpp.ESME_ROK) {
		stats.bind_failures++;
		log('bind refused for system_id=' + JSON.stringify(pdu.system_id) +
			' status=0x' + status.toString(16));
		// node-smpp writes an error response as a bare 16-byte header (no body).
		session.send(pdu.response({command_status: status}));
		return;
	}
	const mode = BIND_MODES[pdu.command];
	session.bound = {system_id: pdu.system_id, tx: mode.tx, rx: mode.rx};
	stats.binds++;
	session.send(pdu.response({system_id: 'NODESMPP'}));
	if (mode.rx) {
		flushPending(session);
	}
}

function handleSubmit(session, pdu) {
	if (!session.bound || !session.bound.tx) {
		stats.submit_rejects++;
		session.send(pdu.response({command_status: smpp.ESME_RINVBNDSTS}));
		return;
	}
	const messageId = (++nextMessageId).toString(16).toUpperCase().padStart(16, '0');
	stats.submits++;
	const systemId = session.bound.system_id;
	const wantReceipt = (pdu.registered_delivery & 0x01) === 0x01;
	const receipt = wantReceipt ? buildReceipt(pdu, messageId) : null;
	// The receipt is generated only after submit_sm_resp has been written.
	session.send(pdu.response({message_id: messageId}), function() {
		if (!receipt) {
			return;
		}
		const fire = function() {
			deliverReceipt(systemId, session, receipt);
		};
		if (RECEIPT_DELAY_MS > 0) {
			setTimeout(fire, RECEIPT_DELAY_MS);
		} else {
			setImmediate(fire);
		}
	});
}

function onPdu(session, pdu) {
	switch (pdu.command) {
	case 'bind_transmitter':
	case 'bind_receiver':
	case 'bind_transceiver':
		return handleBind(session, pdu);
	case 'submit_sm':
		return handleSubmit(session, pdu);
	case 'enquire_link':
		stats.enquire_links++;
		return session.send(pdu.response());
	case 'unbind':
		stats.unbinds++;
		session.bound = null;
		session.send(pdu.response(), function() {
			session.close();
		});
		return;
	case 'deliver_sm_resp':
		if (pdu.command_status === 0) {
			stats.receipt_acks++;
		} else {
			stats.receipt_nacks++;
		}
		return;
	case 'unknown':
		// Unknown command_id: node-smpp turns .response() into generic_nack
		// with ESME_RINVCMDID and the request's sequence_number.
		stats.generic_nacks++;
		return session.send(pdu.response());
	default:
		if (pdu.isResponse()) {
			return; // enquire_link_resp, unbind_resp, generic_nack, ...: nothing to do
		}
		stats.unsupported++;
		return session.send(pdu.response({command_status: smpp.ESME_RINVCMDID}));
	}
}

const server = smpp.createServer(function(session) {
	stats.sessions++;
	session.bound = null;
	session.closed = false;
	session.on('pdu', function(pdu) {
		try {
			onPdu(session, pdu);
		} catch (e) {
			stats.errors++;
			log('error handling ' + pdu.command + ': ' + (e && e.stack || e));
			session.destroy();
		}
	});
	session.on('error', function(e) {
		// node-smpp stops reading a socket after a framing error; drop it.
		stats.errors++;
		log('session error: ' + (e && e.message || e));
		session.closed = true;
		session.destroy();
	});
	session.on('close', function() {
		session.closed = true;
		session.bound = null;
	});
});

server.on('error', function(e) {
	log('server error: ' + (e && e.message || e));
	process.exit(1);
});

server.listen(PORT, HOST, function() {
	process.stdout.write('LISTENING ' + server.address().port + '\n');
});

function statsLine() {
	return 'STATS ' + JSON.stringify(stats) + '\n';
}

let stopping = false;
function shutdown(reason) {
	if (stopping) {
		return;
	}
	stopping = true;
	log('stopping (' + reason + ')');
	server.close();
	for (const s of server.sessions.slice()) {
		s.destroy();
	}
	process.stdout.write(statsLine(), function() {
		process.exit(0);
	});
	setTimeout(function() {
		process.exit(0);
	}, 2000).unref();
}

process.on('SIGTERM', function() {
	shutdown('SIGTERM');
});
process.on('SIGINT', function() {
	shutdown('SIGINT');
});

if (process.env.SMSC_IGNORE_STDIN !== '1') {
	// The parent keeps our stdin open; when it goes away, so do we (no orphans).
	let buffered = '';
	process.stdin.setEncoding('utf8');
	process.stdin.on('data', function(chunk) {
		buffered += chunk;
		let nl;
		while ((nl = buffered.indexOf('\n')) >= 0) {
			const line = buffered.slice(0, nl).trim();
			buffered = buffered.slice(nl + 1);
			if (line === 'stats') {
				process.stdout.write(statsLine());
			}
		}
	});
	process.stdin.on('end', function() {
		shutdown('stdin closed');
	});
	process.stdin.on('error', function() {
		shutdown('stdin error');
	});
}
