// Drives the real lib-jitsi-meet for tests/real_client.rs, and reports back what the library does.
//
// Parameters come from the page's query: `ws` (Prosody's HTTP port, where mod_websocket listens),
// `domain`, `muc`, `focus` (the focus's JID, where the conference request goes), `room`, `id` and
// `password` (the account), `nick` (the display name), `sourceNames` ("1": source-name signaling).
// The page connects, joins `room` with the fake microphone and camera, then asks the test for steps
// (GET /step, held by the server until the test queues one; see `steps`) and POSTs every event of
// interest to /event as JSON `{type, ...}`, in order.
'use strict';

const params = new URLSearchParams(location.search);

// Every report goes out after the one before it, so the test sees events in the order they happened.
let reports = Promise.resolve();
function report(type, fields) {
    const body = JSON.stringify(Object.assign({ at: Math.round(performance.now()) }, fields, { type }));
    reports = reports
        .then(() => fetch('/event', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body }))
        .catch(() => {});
}

/** Anything the library logs or throws, as one line of text. */
function text(value) {
    if (value instanceof Error) {
        return `${value.name}: ${value.message}`;
    }
    if (typeof value === 'string') {
        return value;
    }
    if (value && value.nodeType) {
        return new XMLSerializer().serializeToString(value);
    }
    try {
        return JSON.stringify(value);
    } catch (e) {
        return String(value);
    }
}

// The library's warnings and errors reach the test (a failed accept, a rejected session-initiate),
// except one Chromium's unified-plan SDP prints at every renegotiation.
const NOISE = 'The description does not look like plan-b';
for (const level of ['warn', 'error']) {
    const original = console[level].bind(console);
    console[level] = (...args) => {
        original(...args);
        const line = args.map(text).join(' ');
        if (!line.includes(NOISE)) {
            report('log', { level, text: line });
        }
    };
}
window.addEventListener('error', event => report('page-error', { text: text(event.error || event.message) }));
window.addEventListener('unhandledrejection', event => report('page-error', { text: text(event.reason) }));

const { events } = JitsiMeetJS;
let conference = null;

/** What the test needs to know of a track (`media`: "audio" or "video"). */
function describe(track) {
    const attempt = (look, otherwise) => {
        try {
            return look();
        } catch (e) {
            return otherwise;
        }
    };
    const media = track.getTrack ? track.getTrack() : null;
    return {
        media: track.getType(),
        videoType: attempt(() => track.getVideoType(), null) || null,
        isLocal: track.isLocal(),
        muted: attempt(() => track.isMuted(), null),
        ended: track.isLocal() ? attempt(() => track.isEnded(), null) : null,
        readyState: media ? media.readyState : null,
        disposed: Boolean(track.disposed),
        participantId: attempt(() => track.getParticipantId(), null) || null,
        // The 2021 library names it getSSRC, a current one getSsrc; remote tracks only.
        ssrc: track.isLocal() ? null : attempt(() => (track.getSsrc || track.getSSRC).call(track), null) || null,
    };
}

/** The conference's local track of `media` ("audio" or "video"). */
function localTrack(media) {
    return conference.getLocalTracks().find(track => track.getType() === media);
}

/** The local SDP as lib-jitsi-meet signals it (simulcast and RTX added), if a session exists. */
function localSdp() {
    const session = conference && conference.jvbJingleSession;
    const description = session && session.peerconnection && session.peerconnection.localDescription;
    return description ? description.sdp : null;
}

/** A new local video track from `device` ("video" or "desktop"); a desktop's audio is dropped. */
async function createVideo(device) {
    const tracks = await JitsiMeetJS.createLocalTracks({ devices: [device] });
    const video = tracks.find(track => track.getType() === 'video');
    await Promise.all(tracks.filter(track => track !== video).map(track => track.dispose()));
    if (!video) {
        throw new Error(`createLocalTracks(${device}) gave no video track`);
    }
    return video;
}

/** The bridge session's RTCPeerConnection (lib-jitsi-meet's TraceablePeerConnection wraps it). */
function bridgePeerConnection() {
    const session = conference && conference.jvbJingleSession;
    return session && session.peerconnection && session.peerconnection.peerconnection;
}

// getStats samples, taken every `stats.every` ms once the `sample` step starts them: per RTP stream
// (inbound and outbound), its kind, SSRC and byte and packet counters, stamped with Date.now().
const stats = { every: 100, samples: [], timer: null };

async function sampleStats() {
    const pc = bridgePeerConnection();
    if (!pc) {
        return;
    }
    const report = await pc.getStats();
    const streams = [];
    report.forEach(entry => {
        if (entry.type === 'inbound-rtp' || entry.type === 'outbound-rtp') {
            streams.push({
                dir: entry.type === 'inbound-rtp' ? 'in' : 'out',
                kind: entry.kind || entry.mediaType,
                ssrc: entry.ssrc,
                mid: entry.mid || null,
                bytes: entry.bytesReceived !== undefined ? entry.bytesReceived : entry.bytesSent,
                packets: entry.packetsReceived !== undefined ? entry.packetsReceived : entry.packetsSent,
            });
        }
    });
    stats.samples.push({ t: Date.now(), ice: pc.iceConnectionState, streams });
}

// What the test can ask for: `{"id", "step", ...}`; each ends with a `step-done` report carrying
// the id, `ok` (or `error`) and the step's results. mute/unmute take `kind` ("audio" or "video").
const steps = {
    // The local tracks, the remote tracks (of every participant) and the local SDP.
    report: async () => ({
        myUserId: conference.myUserId(),
        tracks: conference.getLocalTracks().map(describe),
        remoteTracks: conference.getParticipants().flatMap(participant => participant.getTracks()).map(describe),
        localSdp: localSdp(),
        // Whether the library found an A/V moderation component (a disco#info identity of the domain).
        avModerationSupported: conference.isAVModerationSupported(),
    }),
    mute: async step => {
        await localTrack(step.kind).mute();
    },
    unmute: async step => {
        await localTrack(step.kind).unmute();
    },
    // A modified client: a fresh capture of `kind` on every transceiver of the bridge session that
    // sends that kind, behind the library's back (nothing signalled, whatever the client was told).
    'send-anyway': async step => {
        const pc = bridgePeerConnection();
        const stream = await navigator.mediaDevices.getUserMedia({ [step.kind]: true });
        const track = stream.getTracks()[0];
        const directions = [];
        let replaced = 0;
        for (const transceiver of pc.getTransceivers()) {
            const direction = transceiver.currentDirection || transceiver.direction;
            if (transceiver.receiver.track.kind !== step.kind) {
                continue;
            }
            directions.push(direction);
            if (direction === 'sendrecv' || direction === 'sendonly') {
                await transceiver.sender.replaceTrack(track);
                replaced += 1;
            }
        }
        return { replaced, directions };
    },
    'remove-camera': async () => {
        const camera = localTrack('video');
        await conference.removeTrack(camera);
        await camera.dispose();
    },
    'add-camera': async () => {
        await conference.addTrack(await createVideo('video'));
    },
    // The receiver constraints the library sends the bridge (`constraints`, e.g.
    // `{"defaultConstraints": {"maxHeight": 720}}`): without them the bridge forwards no video.
    receive: async step => {
        conference.setReceiverConstraints(step.constraints);
    },
    // Starts sampling getStats every `every` ms (100 unless given).
    sample: async step => {
        stats.every = step.every || stats.every;
        if (!stats.timer) {
            stats.timer = setInterval(() => sampleStats().catch(e => report('log', { level: 'error', text: `getStats: ${text(e)}` })), stats.every);
        }
    },
    // The samples taken since the last `samples` step, and the clock they are stamped with.
    samples: async () => {
        const samples = stats.samples;
        stats.samples = [];
        return { now: Date.now(), samples };
    },
    // The 2021 client has one video track at a time: screenshare replaces the camera.
    screenshare: async () => {
        await conference.replaceTrack(localTrack('video'), await createVideo('desktop'));
    },
    // A screenshare as the library supports it: the 2021 library replaces the camera (`mode`
    // "replace"); a current one refuses that and shares the screen as a second video track ("add").
    'share-screen': async () => {
        const desktop = await createVideo('desktop');
        try {
            await conference.replaceTrack(localTrack('video'), desktop);
            return { mode: 'replace' };
        } catch (e) {
            await conference.addTrack(desktop);
            return { mode: 'add', replaceRefused: text(e) };
        }
    },
    camera: async () => {
        await conference.replaceTrack(localTrack('video'), await createVideo('video'));
    },
    // A current client (multi-stream) shares the screen as a second video track beside the camera.
    'add-desktop': async () => {
        await conference.addTrack(await createVideo('desktop'));
    },
    'remove-desktop': async () => {
        const desktop = conference.getLocalTracks().find(track => track.getVideoType() === 'desktop');
        await conference.removeTrack(desktop);
        await desktop.dispose();
    },
};

/** Takes steps from the test one at a time, for as long as the test is there. */
async function runSteps() {
    for (;;) {
        let step;
        try {
            step = await (await fetch('/step')).json();
        } catch (e) {
            return; // the test is gone
        }
        try {
            const result = await steps[step.step](step);
            report('step-done', Object.assign({ id: step.id, step: step.step, ok: true }, result || {}));
        } catch (e) {
            report('step-done', { id: step.id, step: step.step, ok: false, error: text(e) });
        }
    }
}

/** Reports the conference's events; steps start once it is joined. */
function watchConference() {
    const on = (name, handler) => conference.on(events.conference[name], handler);
    on('CONFERENCE_JOINED', () => {
        report('conference-joined', { myUserId: conference.myUserId() });
        runSteps();
    });
    on('CONFERENCE_FAILED', (error, ...detail) => report('conference-failed', { error, detail: text(detail) }));
    on('CONFERENCE_ERROR', (error, ...detail) => report('conference-error', { error, detail: text(detail) }));
    on('TRACK_ADDED', track => report('track-added', describe(track)));
    on('TRACK_REMOVED', track => report('track-removed', describe(track)));
    on('TRACK_MUTE_CHANGED', track => report('track-mute-changed', describe(track)));
    on('TRACK_UNMUTE_REJECTED', track => report('track-unmute-rejected', describe(track)));
    // A/V moderation as the library reports it to the app (jitsi-meet's av-moderation feature turns
    // these into "you may not unmute; raise your hand" and "you may unmute now").
    on('AV_MODERATION_CHANGED', ({ enabled, mediaType }) => report('av-moderation-changed', { enabled, mediaType }));
    on('AV_MODERATION_APPROVED', ({ mediaType }) => report('av-moderation-approved', { mediaType }));
    on('AV_MODERATION_REJECTED', ({ mediaType }) => report('av-moderation-rejected', { mediaType }));
}

// The IQ requests the client sent: id -> what they asked (see describePayload).
const requests = new Map();

/** "name namespace [action]" of an IQ payload, e.g. "jingle urn:xmpp:jingle:1 transport-info". */
function describePayload(payload) {
    if (!payload) {
        return '';
    }
    const namespace = payload.namespaceURI || payload.getAttribute('xmlns');
    const action = payload.getAttribute('action');
    return [payload.nodeName, namespace, action].filter(Boolean).join(' ');
}

/**
 * Notes and reports every IQ request the client sends (`iq-sent`, with what it asks: `request`) and
 * every presence it sends (`presence-sent`), in the order they go out on the wire, through Strophe's
 * `xmlOutput` (lib-jitsi-meet's `_stropheConn`; wrapped, so its stream-management hook still runs).
 * Called before connecting, so the conference request is seen.
 */
function watchRequests(connection) {
    const strophe = connection.xmpp.connection._stropheConn;
    const output = strophe.xmlOutput.bind(strophe);
    strophe.xmlOutput = element => {
        const type = element.getAttribute && element.getAttribute('type');
        if (element.nodeName === 'iq' && (type === 'get' || type === 'set')) {
            const request = describePayload(element.firstElementChild);
            requests.set(element.getAttribute('id'), request);
            report('iq-sent', { to: element.getAttribute('to'), request, xml: new XMLSerializer().serializeToString(element) });
        } else if (element.nodeName === 'iq') {
            report('iq-answer-sent', { to: element.getAttribute('to'), iqType: type, xml: new XMLSerializer().serializeToString(element) });
        } else if (element.nodeName === 'presence') {
            report('presence-sent', { to: element.getAttribute('to'), xml: new XMLSerializer().serializeToString(element) });
        }
        return output(element);
    };
}

/**
 * Reports every IQ the client receives, as XML. A `result` or `error` is `stray` unless it answers a
 * request the client sent, and names what it answers (`request`). Called once connected: Strophe
 * drops its handlers on connect.
 */
function watchIqs(connection) {
    connection.xmpp.connection.addHandler(iq => {
        const type = iq.getAttribute('type');
        const fields = { iqType: type, from: iq.getAttribute('from'), xml: new XMLSerializer().serializeToString(iq) };
        if (type === 'result' || type === 'error') {
            const id = iq.getAttribute('id');
            fields.stray = !requests.has(id);
            fields.request = requests.get(id) || null;
        }
        report('iq', fields);
        return true; // keep the handler
    }, null, 'iq', null, null, null);
    // Messages too (components' json-messages, such as A/V moderation's), as XML.
    connection.xmpp.connection.addHandler(message => {
        report('message', { from: message.getAttribute('from'), xml: new XMLSerializer().serializeToString(message) });
        return true;
    }, null, 'message', null, null, null);
}

async function start() {
    // sourceNames=1: sources carry names (<nick>-a0, <nick>-v0) and presence carries <SourceInfo>;
    // otherwise (the 2021 default) presence says a screenshare with a plain <videoType>desktop.
    JitsiMeetJS.init({ sourceNameSignaling: params.get('sourceNames') === '1' });
    JitsiMeetJS.setLogLevel(JitsiMeetJS.logLevels.WARN);
    report('page-loaded', { version: JitsiMeetJS.version });
    const connection = new JitsiMeetJS.JitsiConnection(null, null, {
        hosts: { domain: params.get('domain'), muc: params.get('muc'), focus: params.get('focus') },
        serviceUrl: `ws://127.0.0.1:${params.get('ws')}/xmpp-websocket`,
    });
    watchRequests(connection);
    connection.addEventListener(events.connection.CONNECTION_FAILED, (error, message) =>
        report('connection-failed', { error, message: text(message) }));
    connection.addEventListener(events.connection.CONNECTION_DISCONNECTED, message =>
        report('connection-disconnected', { message: text(message) }));
    connection.addEventListener(events.connection.CONNECTION_ESTABLISHED, async () => {
        report('connection-established');
        watchIqs(connection);
        const options = { p2p: { enabled: false }, openBridgeChannel: false };
        // `codecs` (e.g. "vp8"): the video codec order a current library prefers (its
        // videoQuality.codecPreferenceOrder). A current library prefers AV1 by default and fails to
        // set its encodings when the focus offers VP8 only. Absent otherwise: with even an empty
        // videoQuality the 2021 library offered one camera layer instead of three (observed).
        const codecs = params.get('codecs');
        if (codecs) {
            options.videoQuality = { codecPreferenceOrder: codecs.split(',') };
        }
        conference = connection.initJitsiConference(params.get('room'), options);
        watchConference();
        conference.setDisplayName(params.get('nick'));
        try {
            const tracks = await JitsiMeetJS.createLocalTracks({ devices: ['audio', 'video'] });
            report('local-tracks-created', { tracks: tracks.map(describe) });
            for (const track of tracks) {
                await conference.addTrack(track);
            }
        } catch (e) {
            report('page-error', { text: `createLocalTracks: ${text(e)}` });
        }
        conference.join();
    });
    connection.connect({ id: params.get('id'), password: params.get('password') });
}

start().catch(e => report('page-error', { text: `start: ${text(e)}` }));
