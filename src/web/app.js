// shimmy's chat page: models from /v1/models, answers streamed from /v1/chat/completions (SSE
// read through fetch), conversations and settings in localStorage, the API key (when the server
// asks for one) in sessionStorage. Model text is data: it becomes DOM text nodes, never HTML.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const store = {
    get(k, d) {
      try { const v = localStorage.getItem('shimmy.' + k); return v === null ? d : JSON.parse(v); } catch { return d; }
    },
    set(k, v) { try { localStorage.setItem('shimmy.' + k, JSON.stringify(v)); } catch { /* full */ } },
  };
  let convs = store.get('convs', []);
  let cur = store.get('current', null);
  const settings = Object.assign({ system: '', temperature: 0.8, max_tokens: 512 }, store.get('settings', {}));
  let key = sessionStorage.getItem('shimmy.key') || '';
  let busy = null; // the AbortController of the answer being streamed

  // ---- Markdown into DOM nodes ----
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  const INLINE = /(`+)([\s\S]*?)\1|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g;
  function inline(parent, text) {
    const re = new RegExp(INLINE.source, 'g');
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.append(text.slice(last, m.index));
      if (m[1]) parent.append(el('code', null, m[2]));
      else if (m[3]) inline(parent.appendChild(el('strong')), m[3]);
      else if (m[4]) inline(parent.appendChild(el('em')), m[4]);
      else {
        const a = el('a', null, m[5]);
        a.href = m[6];
        a.rel = 'noopener noreferrer nofollow';
        a.target = '_blank';
        parent.append(a);
      }
      last = re.lastIndex;
    }
    if (last < text.length) parent.append(text.slice(last));
  }
  const FENCE = /^\s*(```|~~~)\s*([\w+-]*)/;
  const ITEM = /^\s*([-*+]|\d+[.)])\s+/;
  const BLOCK = /^(\s*(```|~~~)|#{1,6}\s|>|\s*([-*+]|\d+[.)])\s+)/;
  function renderMarkdown(src) {
    const frag = document.createDocumentFragment();
    const lines = String(src).split('\n');
    let i = 0;
    let m;
    while (i < lines.length) {
      const line = lines[i];
      if ((m = FENCE.exec(line))) {
        const body = [];
        for (i++; i < lines.length && !lines[i].trim().startsWith(m[1]); i++) body.push(lines[i]);
        i++;
        const pre = el('pre');
        pre.append(el('code', m[2] ? 'lang-' + m[2] : null, body.join('\n')));
        frag.append(pre);
      } else if ((m = /^(#{1,6})\s+(.*)$/.exec(line))) {
        const h = el('h' + Math.min(m[1].length + 2, 6));
        inline(h, m[2]);
        frag.append(h);
        i++;
      } else if (ITEM.test(line)) {
        const list = el(/^\s*\d/.test(line) ? 'ol' : 'ul');
        for (; i < lines.length && ITEM.test(lines[i]); i++) {
          const li = el('li');
          inline(li, lines[i].replace(ITEM, ''));
          list.append(li);
        }
        frag.append(list);
      } else if (/^>/.test(line)) {
        const q = [];
        for (; i < lines.length && /^>/.test(lines[i]); i++) q.push(lines[i].replace(/^>\s?/, ''));
        const bq = el('blockquote');
        bq.append(renderMarkdown(q.join('\n')));
        frag.append(bq);
      } else if (line.trim() === '') {
        i++;
      } else {
        const p = el('p');
        do {
          if (p.childNodes.length) p.append(el('br'));
          inline(p, lines[i++]);
        } while (i < lines.length && lines[i].trim() !== '' && !BLOCK.test(lines[i]));
        frag.append(p);
      }
    }
    return frag;
  }

  // ---- conversations ----
  const current = () => convs.find((c) => c.id === cur);
  function save() {
    store.set('convs', convs);
    store.set('current', cur);
  }
  function newConv() {
    const c = { id: Date.now().toString(36) + Math.random().toString(36).slice(2, 6), title: 'New chat', messages: [] };
    convs.unshift(c);
    cur = c.id;
    save();
    return c;
  }
  function renderList() {
    const ul = $('convs');
    ul.replaceChildren();
    for (const c of convs) {
      const li = el('li', c.id === cur ? 'on' : null);
      const del = el('button', null, '×');
      del.title = 'Delete';
      del.onclick = (ev) => {
        ev.stopPropagation();
        convs = convs.filter((x) => x !== c);
        if (cur === c.id) cur = convs.length ? convs[0].id : null;
        save();
        renderAll();
      };
      li.append(el('span', null, c.title), del);
      li.onclick = () => { if (!busy) { cur = c.id; save(); renderAll(); } };
      ul.append(li);
    }
  }
  function messageNode(msg) {
    const d = el('div', 'msg ' + msg.role + (msg.error ? ' error' : ''));
    d.append(el('div', 'who', msg.role === 'user' ? 'You' : msg.model || 'assistant'));
    if (msg.reasoning) {
      const det = el('details', 'reasoning');
      det.append(el('summary', null, 'Reasoning'), el('pre', null, msg.reasoning));
      d.append(det);
    }
    const body = el('div', 'body');
    if (msg.role === 'user') body.append(el('p', 'plain', msg.content));
    else body.append(renderMarkdown(msg.content || ''));
    d.append(body);
    for (const tc of msg.tool_calls || []) {
      const det = el('details', 'tool');
      det.open = true;
      det.append(el('summary', null, 'Tool call: ' + tc.function.name), el('pre', null, tc.function.arguments));
      d.append(det);
    }
    if (msg.error) d.append(el('div', 'meta', 'Error: ' + msg.error));
    else if (msg.meta) d.append(el('div', 'meta', msg.meta));
    return d;
  }
  function renderConv() {
    const log = $('log');
    log.replaceChildren(...(current() ? current().messages.map(messageNode) : []));
    log.scrollTop = log.scrollHeight;
  }
  function renderAll() {
    renderList();
    renderConv();
  }

  // ---- the server ----
  async function api(path, init = {}) {
    const headers = Object.assign({}, init.headers);
    if (key) headers.Authorization = 'Bearer ' + key;
    const r = await fetch(path, Object.assign({}, init, { headers }));
    if (r.status === 401) {
      $('key').hidden = false;
      $('keyin').focus();
      throw new Error('this server needs an API key');
    }
    return r;
  }
  function status(text) { $('status').textContent = text; }
  async function loadModels() {
    try {
      const r = await api('/v1/models');
      const list = (await r.json()).data || [];
      const sel = $('model');
      sel.replaceChildren(...list.map((m) => el('option', null, m.id)));
      const want = store.get('model', null);
      if (list.some((m) => m.id === want)) sel.value = want;
      status(list.length ? '' : 'no models: start shimmy with --model PATH');
    } catch (e) {
      status(e.message);
    }
  }
  async function readSse(r, onChunk) {
    const reader = r.body.getReader();
    const dec = new TextDecoder();
    let pending = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      pending += dec.decode(value, { stream: true });
      let k;
      while ((k = pending.indexOf('\n\n')) >= 0) {
        const ev = pending.slice(0, k);
        pending = pending.slice(k + 2);
        for (const line of ev.split('\n')) {
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') return;
          const obj = JSON.parse(data);
          if (obj.error) throw new Error(obj.error.message);
          onChunk(obj);
        }
      }
    }
  }
  function apply(ans, chunk) {
    for (const ch of chunk.choices || []) {
      const d = ch.delta || {};
      if (d.content) ans.content += d.content;
      if (d.reasoning_content) ans.reasoning += d.reasoning_content;
      for (const t of d.tool_calls || []) {
        const tc = (ans.tool_calls[t.index] ||= { id: t.id || '', type: 'function', function: { name: '', arguments: '' } });
        if (t.function && t.function.name) tc.function.name = t.function.name;
        if (t.function && t.function.arguments) tc.function.arguments += t.function.arguments;
      }
    }
    if (chunk.usage) ans.usage = chunk.usage;
  }
  // What the server sees of a conversation: the system prompt, then every finished turn.
  function wire(conv) {
    const out = settings.system ? [{ role: 'system', content: settings.system }] : [];
    for (const m of conv.messages) {
      if (m.pending || m.error) continue;
      const w = { role: m.role, content: m.content };
      if (m.tool_calls && m.tool_calls.length) w.tool_calls = m.tool_calls;
      out.push(w);
    }
    return out;
  }
  function setBusy(on) {
    $('send').hidden = on;
    $('stop').hidden = !on;
    status(on ? 'answering…' : '');
  }
  async function send(text) {
    const conv = current() || newConv();
    const model = $('model').value;
    conv.messages.push({ role: 'user', content: text });
    if (conv.title === 'New chat') conv.title = text.slice(0, 40);
    const ans = { role: 'assistant', model, content: '', reasoning: '', tool_calls: [], pending: true };
    const body = { model, messages: wire(conv), stream: true, stream_options: { include_usage: true },
      temperature: Number(settings.temperature), max_tokens: Number(settings.max_tokens) };
    conv.messages.push(ans);
    save();
    renderAll();
    let node = $('log').lastChild;
    let frame = 0;
    const redraw = () => {
      frame = 0;
      const n = messageNode(ans);
      node.replaceWith(n);
      node = n;
      $('log').scrollTop = $('log').scrollHeight;
    };
    const t0 = performance.now();
    busy = new AbortController();
    setBusy(true);
    try {
      const r = await api('/v1/chat/completions', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body), signal: busy.signal });
      if (!r.ok) {
        const e = await r.json().catch(() => ({}));
        throw new Error((e.error && e.error.message) || r.statusText);
      }
      await readSse(r, (chunk) => {
        apply(ans, chunk);
        if (!frame) frame = requestAnimationFrame(redraw);
      });
      if (ans.usage) {
        const s = (performance.now() - t0) / 1000;
        ans.meta = `${ans.usage.completion_tokens} tokens in ${s.toFixed(1)} s`;
      }
    } catch (e) {
      if (e.name === 'AbortError') ans.meta = 'stopped';
      else ans.error = e.message;
    } finally {
      delete ans.pending;
      if (frame) cancelAnimationFrame(frame);
      busy = null;
      setBusy(false);
      save();
      redraw();
    }
  }

  // ---- controls ----
  function bindSetting(id) {
    const input = $(id);
    input.value = settings[id];
    input.addEventListener('change', () => {
      settings[id] = input.type === 'number' ? Number(input.value) : input.value;
      store.set('settings', settings);
    });
  }
  function start() {
    ['system', 'temperature', 'max_tokens'].forEach(bindSetting);
    $('gear').onclick = () => {
      const s = $('settings');
      s.hidden = !s.hidden;
      $('gear').setAttribute('aria-expanded', String(!s.hidden));
    };
    $('new').onclick = () => { if (!busy) { newConv(); renderAll(); $('prompt').focus(); } };
    $('model').onchange = () => store.set('model', $('model').value);
    $('stop').onclick = () => busy && busy.abort();
    $('keyok').onclick = () => {
      key = $('keyin').value.trim();
      sessionStorage.setItem('shimmy.key', key);
      $('key').hidden = true;
      loadModels();
    };
    $('ask').onsubmit = (ev) => {
      ev.preventDefault();
      const text = $('prompt').value;
      if (busy || !text.trim() || !$('model').value) return;
      $('prompt').value = '';
      send(text);
    };
    $('prompt').addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        $('ask').requestSubmit();
      }
    });
    renderAll();
    loadModels();
  }
  window.shimmy = { renderMarkdown };
  start();
})();
