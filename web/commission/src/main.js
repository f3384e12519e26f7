// The commissioning page: setup code, network (corrected as often as
// needed in the same session), then the trusted-user claim. All crypto runs
// here (session.js, spake2p.js); the device only ever sees SPAKE2+ shares,
// confirmations and AES-GCM ciphertext. body[data-state] and the element
// ids are what the browser test drives.

import { DeviceError, Session } from './session.js';

const $ = (id) => document.getElementById(id);

async function post(msg) {
  const r = await fetch('/api/commission', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(msg),
    cache: 'no-store',
  });
  if (!r.ok) throw new Error(`the device answered HTTP ${r.status}`);
  return r.json();
}

const session = new Session(post);

function status(id, text, kind) {
  const el = $(id);
  el.textContent = text;
  el.className = `status ${kind}`;
}

function show(state) {
  document.body.dataset.state = state;
  const order = ['code', 'network', 'claim', 'done'];
  for (const s of order) {
    $(`step-${s}`).hidden = s !== state && !(s === 'network' && state === 'claim');
    const ind = $(`ind-${s}`);
    if (ind) {
      ind.className = s === state ? 'active' : order.indexOf(s) < order.indexOf(state) ? 'done' : '';
    }
  }
}

function explain(e) {
  if (e instanceof DeviceError) {
    const wait = Math.ceil((e.retryMs || 0) / 1000);
    switch (e.code) {
      case 'auth': return 'Wrong setup code. Check the label and try again.';
      case 'throttled': return `A wrong setup code was tried: wait ${wait} s before trying again.`;
      case 'locked': return `Too many wrong setup codes: the device is locked for ${wait} s.`;
      case 'busy': return 'Someone else is setting up this device right now.';
      case 'session': return 'The session ended (idle too long): reload the page and start again.';
      default: return `The device refused: ${e.message}`;
    }
  }
  return e.message || String(e);
}

async function busy(button, fn) {
  button.disabled = true;
  try {
    await fn();
  } finally {
    button.disabled = button.dataset.done === '1';
  }
}

$('form-code').addEventListener('submit', (ev) => {
  ev.preventDefault();
  busy($('btn-code'), async () => {
    status('code-status', 'Checking the setup code…', 'busy');
    try {
      await session.handshake($('code').value.trim(), (t) => status('code-status', t, 'busy'));
      $('device').textContent = `Device ${session.device}`;
      status('code-status', 'Setup code accepted: the session is encrypted.', 'ok');
      show('network');
      $('ssid').focus();
    } catch (e) {
      status('code-status', explain(e), 'err');
    }
  });
});

$('wired').addEventListener('change', () => {
  $('ssid').disabled = $('psk').disabled = $('wired').checked;
});

$('form-network').addEventListener('submit', (ev) => {
  ev.preventDefault();
  busy($('btn-network'), async () => {
    const wired = $('wired').checked;
    const net = { ssid: $('ssid').value, psk: $('psk').value, wired };
    status('network-status', wired ? 'Checking the cable…' : `Joining ${net.ssid}…`, 'busy');
    try {
      const r = await session.network(net);
      if (r.t === 'error') throw new Error(r.message);
      if (r.joined) {
        status('network-status', `Joined ${wired ? 'the wired network' : net.ssid}.`, 'ok');
        $('form-network').querySelectorAll('input, button').forEach((el) => {
          el.disabled = true;
          el.dataset.done = '1';
        });
        show('claim');
      } else {
        status('network-status', `Could not join: ${r.reason || 'no reason given'}. Correct it and try again.`, 'err');
        $('psk').select();
      }
    } catch (e) {
      status('network-status', explain(e), 'err');
    }
  });
});

$('claim-file').addEventListener('change', async () => {
  const f = $('claim-file').files[0];
  if (f) $('claim-text').value = await f.text();
});

async function finish(text) {
  try {
    await session.done();
  } catch (e) {
    /* the device may already have ended the session */
  }
  status('done-status', text, 'ok');
  show('done');
}

$('form-claim').addEventListener('submit', (ev) => {
  ev.preventDefault();
  busy($('btn-claim'), async () => {
    let claim;
    try {
      claim = JSON.parse($('claim-text').value);
    } catch (e) {
      status('claim-status', 'That is not a claim file (JSON expected).', 'err');
      return;
    }
    status('claim-status', `Provisioning with template ${claim.template}…`, 'busy');
    try {
      const r = await session.provision(claim);
      if (r.t === 'error') throw new Error(r.message);
      if (!r.ok) {
        status('claim-status', `Not provisioned: ${r.reason}`, 'err');
        return;
      }
      status('claim-status', 'Provisioned.', 'ok');
      $('done-status').dataset.thing = r.thing;
      await finish(`The device ${session.device} is on the network and in the fleet as thing `);
      const t = document.createElement('span');
      t.id = 'thing';
      t.className = 'thing';
      t.textContent = r.thing;
      $('done-status').appendChild(t);
    } catch (e) {
      status('claim-status', explain(e), 'err');
    }
  });
});

$('btn-skip').addEventListener('click', () => {
  busy($('btn-skip'), () => finish(`The device ${session.device} is on the network.`));
});

show('code');
