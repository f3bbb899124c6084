// The pose editor's browser side. Runs once per page as gr.HTML's js_on_load, with `element`, `props`,
// `server` and `watch` from Gradio. `T` (tables from Python: parts, colours, bones, names) is put
// in front of this file by ui/editor.py. Drags run here at display rate; the pose goes to the server only when a
// drag ends: setting props.value is enough, as Gradio 6.31's HTML component dispatches 'change' itself whenever
// its value changes (calling trigger('change') as well ran the page's handlers twice). Person and joint tools
// ask the server (server.edit_pose).
const NS = 'http://www.w3.org/2000/svg';
const root = element.querySelector('#pose-editor');
const svg = root.querySelector('svg.pe-canvas');
const backdrop = svg.querySelector('.pe-backdrop');
const photo = svg.querySelector('.pe-photo');
const layer = svg.querySelector('.pe-people');
const statusLine = root.querySelector('.pe-status');
const hiddenList = root.querySelector('.pe-hidden');
const dragMode = root.querySelector('.pe-drag-mode');
const PARTS = Object.keys(T.parts);
const HINT = 'Drag a joint to move it (or its whole hand, face or feet: see Drag), a limb to move its person; click a person to select it.';

const clone = (value) => JSON.parse(JSON.stringify(value));
const emptyPose = () => ({ version: T.version, canvas_width: T.empty_canvas[0], canvas_height: T.empty_canvas[1], people: [] });
const asPose = (value) => (value && typeof value === 'object' && Array.isArray(value.people) ? clone(value) : emptyPose());

let pose = asPose(props.value);
let baseline = JSON.stringify(pose);
let loadMark = props.load_id;
// Gradio may hand a load's props over in two passes, its mark before its value: until the value has come,
// a new value is the load's, not an edit of the page's.
let lastValue = JSON.stringify(props.value);
let awaitingLoad = false;
let undoStack = [];
let redoStack = [];
let selected = -1;          // the selected person, or -1
let picked = null;          // the last clicked joint: {person, part, index}
let drag = null;
let busy = false;
const shown = { hands: true, face: true, photo: true };
let joints = new Map();     // "person/part/index" -> circle
let bonesAt = new Map();    // "person/part/index" -> [[line, end]] with end 1 or 2

const key = (person, part, index) => `${person}/${part}/${index}`;
const field = (part) => T.parts[part].field;

function points(person, part) {
  const values = pose.people[person][field(part)] || [];
  return values.length ? values : new Array(T.parts[part].size * 3).fill(0);
}

function visible(person, part, index) {
  const score = points(person, part)[index * 3 + 2];
  return T.parts[part].visible_at_threshold ? score >= T.threshold : score > T.threshold;
}

function gridStep() {
  const side = Math.max(pose.canvas_width, pose.canvas_height);
  return 2 ** (Math.ceil(Math.log2(2 * side)) - T.significand_bits);
}

// Stroke sizes as the conditioning draws them at this canvas size (draw.Widths scaled by draw.width_factor).
function width(name) {
  const side = Math.max(pose.canvas_width, pose.canvas_height);
  return T.widths[name] * (1 + T.width_steps.filter((step) => step <= side).length);
}

const snap = (value) => Math.round(value / gridStep()) * gridStep();
const rgb = (colour) => `rgb(${colour[0]},${colour[1]},${colour[2]})`;

function setStatus(text, isError = false) {
  statusLine.textContent = text || HINT;
  statusLine.classList.toggle('pe-error', Boolean(isError));
}

function svgPoint(event) {
  const matrix = svg.getScreenCTM().inverse();
  const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix);
  return [point.x, point.y];
}

function make(tag, attributes, parent) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  parent.appendChild(node);
  return node;
}

function bone(group, person, part, start, end, colour, width) {
  if (!visible(person, part, start) || !visible(person, part, end)) return;
  const values = points(person, part);
  const line = make('line', {
    class: 'pe-bone', 'data-person': person, stroke: rgb(colour), 'stroke-width': width,
    x1: values[start * 3], y1: values[start * 3 + 1], x2: values[end * 3], y2: values[end * 3 + 1],
  }, group);
  for (const [index, end_] of [[start, 1], [end, 2]]) {
    const id = key(person, part, index);
    if (!bonesAt.has(id)) bonesAt.set(id, []);
    bonesAt.get(id).push([line, end_]);
  }
}

function partShown(part) {
  if (part === 'face') return shown.face;
  if (T.hand_parts.includes(part)) return shown.hands;
  return true;
}

function render() {
  const canvasWidth = pose.canvas_width;
  const canvasHeight = pose.canvas_height;
  svg.setAttribute('viewBox', `0 0 ${canvasWidth} ${canvasHeight}`);
  svg.style.aspectRatio = `${canvasWidth} / ${canvasHeight}`;
  svg.style.width = `min(100%, calc(${T.max_height_vh}vh * ${canvasWidth / canvasHeight}))`;
  for (const node of [backdrop, photo]) {
    node.setAttribute('width', canvasWidth);
    node.setAttribute('height', canvasHeight);
  }
  const background = props.background || '';
  if (background) photo.setAttribute('href', background); else photo.removeAttribute('href');
  photo.style.display = shown.photo && background ? '' : 'none';
  layer.replaceChildren();
  joints = new Map();
  bonesAt = new Map();
  pose.people.forEach((_, person) => {
    const group = make('g', { class: 'pe-person', 'data-person': person }, layer);
    const limbs = make('g', { class: 'pe-limbs' }, group);
    T.limbs.forEach(([start, end], limb) => bone(limbs, person, 'body', start, end, T.limb_colors[limb], 2 * width('limb_half_width')));
    // One group per part, in drawing order, so a whole hand (or face, or feet) can be dragged as one.
    for (const part of T.drawing_order) {
      if (!partShown(part)) continue;
      const partGroup = make('g', { class: 'pe-part', 'data-group': part }, group);
      if (T.hand_parts.includes(part)) {
        T.hand_bones.forEach(([start, end], index) => bone(partGroup, person, part, start, end, T.hand_bone_colors[index], width('hand_bone_thickness')));
      }
      const values = points(person, part);
      for (let index = 0; index < T.parts[part].size; index += 1) {
        if (!visible(person, part, index)) continue;
        const circle = make('circle', {
          class: 'pe-joint', 'data-person': person, 'data-part': part, 'data-index': index,
          cx: values[index * 3], cy: values[index * 3 + 1], r: width(T.radius_of[part]), fill: rgb(T.joint_colors[part][index]),
        }, partGroup);
        joints.set(key(person, part, index), circle);
      }
    }
  });
  sizeHitAreas();
  drawSelection();
  refreshControls();
}

// Joints are small on screen; a transparent stroke makes each one T.hit_px screen pixels wide to grab.
function sizeHitAreas() {
  const matrix = svg.getScreenCTM();
  const scale = matrix ? Math.hypot(matrix.a, matrix.b) : 0;
  if (scale > 0) layer.style.setProperty('--pe-hit', `${(2 * T.hit_px) / scale}px`);
}
new ResizeObserver(sizeHitAreas).observe(svg);

function personBox(person) {
  let box = null;
  for (const part of PARTS) {
    const values = points(person, part);
    for (let index = 0; index < T.parts[part].size; index += 1) {
      if (!visible(person, part, index)) continue;
      const x = values[index * 3];
      const y = values[index * 3 + 1];
      box = box ? [Math.min(box[0], x), Math.min(box[1], y), Math.max(box[2], x), Math.max(box[3], y)] : [x, y, x, y];
    }
  }
  return box;
}

function drawSelection() {
  layer.querySelectorAll('.pe-box').forEach((node) => node.remove());
  layer.querySelectorAll('.pe-picked').forEach((node) => node.classList.remove('pe-picked'));
  if (selected >= pose.people.length) selected = -1;
  root.dataset.selected = String(selected);
  if (picked) joints.get(key(picked.person, picked.part, picked.index))?.classList.add('pe-picked');
  if (selected < 0) return;
  const box = personBox(selected);
  const group = layer.children[selected];
  if (!box || !group) return;
  const pad = width('joint_radius') * 2;
  make('rect', { class: 'pe-box', x: box[0] - pad, y: box[1] - pad, width: box[2] - box[0] + 2 * pad, height: box[3] - box[1] + 2 * pad, 'stroke-width': 1 }, group);
}

function refreshControls() {
  const current = JSON.stringify(pose);
  root.dataset.unsaved = String(current !== baseline);
  root.dataset.people = String(pose.people.length);
  root.dataset.undo = String(undoStack.length);
  root.dataset.redo = String(redoStack.length);
  const enable = (tool, on) => { root.querySelector(`[data-tool="${tool}"]`).disabled = busy || !on; };
  enable('undo', undoStack.length > 0);
  enable('redo', redoStack.length > 0);
  enable('reset', current !== baseline);
  enable('add', true);
  root.querySelectorAll('[data-person-tool]').forEach((button) => { button.disabled = busy || selected < 0; });
  enable('hide', picked !== null);
  enable('turn_left', picked !== null && T.turnable_parts.includes(picked.part));
  enable('turn_right', picked !== null && T.turnable_parts.includes(picked.part));
  const options = [new Option('Hidden joints', '')];
  if (selected >= 0) {
    for (const part of PARTS) {
      for (let index = 0; index < T.parts[part].size; index += 1) {
        if (visible(selected, part, index)) continue;
        const name = part === 'body' ? T.body_names[index] : `${part.replace('_', ' ')} ${index}`;
        options.push(new Option(name, `${part}/${index}`));
      }
    }
  }
  hiddenList.replaceChildren(...options);
  enable('show', options.length > 1);
}

// The pose becomes `next`: one undo step, and the page hears of it.
function commit(next, note = '') {
  undoStack.push(JSON.stringify(pose));
  if (undoStack.length > T.history) undoStack.shift();
  redoStack = [];
  pose = next;
  publish(note);
}

function publish(note = '') {
  props.value = clone(pose);  // Gradio sends it and fires the component's change event
  lastValue = JSON.stringify(props.value);
  render();
  setStatus(note);
}

function undo() {
  if (!undoStack.length) return;
  redoStack.push(JSON.stringify(pose));
  pose = JSON.parse(undoStack.pop());
  publish('Undone.');
}

function redo() {
  if (!redoStack.length) return;
  undoStack.push(JSON.stringify(pose));
  pose = JSON.parse(redoStack.pop());
  publish('Redone.');
}

async function edit(request) {
  if (busy) return;
  busy = true;
  refreshControls();
  try {
    const answer = await server.edit_pose({ ...request, pose });
    if (answer.error) {
      setStatus(answer.error, true);
    } else {
      if (request.op === 'delete') selected = -1;
      if (request.op === 'add') selected = answer.pose.people.length - 1;
      if (request.op === 'hide') picked = null;
      commit(answer.pose, answer.note);
    }
  } catch (error) {
    setStatus(`The server did not answer (${error}); the pose is unchanged.`, true);
    render();
  } finally {
    busy = false;
    refreshControls();
  }
}

const TOOLS = {
  undo, redo,
  reset: () => { if (JSON.stringify(pose) !== baseline) commit(JSON.parse(baseline), 'Back to the loaded pose.'); },
  add: () => edit({ op: 'add' }),
  mirror: () => edit({ op: 'mirror', person: selected }),
  larger: () => edit({ op: 'scale', person: selected, factor: T.scale_step }),
  smaller: () => edit({ op: 'scale', person: selected, factor: 1 / T.scale_step }),
  delete: () => edit({ op: 'delete', person: selected }),
  turn_left: () => picked && edit({ op: 'turn', person: picked.person, part: picked.part, degrees: -T.turn_step }),
  turn_right: () => picked && edit({ op: 'turn', person: picked.person, part: picked.part, degrees: T.turn_step }),
  hide: () => picked && edit({ op: 'hide', person: picked.person, part: picked.part, index: picked.index }),
  show: () => {
    if (!hiddenList.value) return;
    const [part, index] = hiddenList.value.split('/');
    edit({ op: 'show', person: selected, part, index: Number(index) });
  },
};

root.addEventListener('click', (event) => {
  const button = event.target.closest('[data-tool]');
  if (button && !button.disabled) TOOLS[button.dataset.tool]();
});

root.addEventListener('change', (event) => {
  const toggle = event.target.dataset?.toggle;
  if (!toggle) return;
  shown[toggle] = event.target.checked;
  render();
});

// Dragging: pointer events (mouse, pen and touch alike); moves are drawn once per frame.
function moveJoint(current, target) {
  const [x, y] = target;
  const { person, part, index } = current;
  const circle = joints.get(key(person, part, index));
  circle.setAttribute('cx', x);
  circle.setAttribute('cy', y);
  for (const [line, end] of bonesAt.get(key(person, part, index)) || []) {
    line.setAttribute(`x${end}`, x);
    line.setAttribute(`y${end}`, y);
  }
}

function dragTarget(current) {
  const dx = current.latest[0] - current.start[0];
  const dy = current.latest[1] - current.start[1];
  if (current.kind !== 'joint') return [snap(dx), snap(dy)];
  const x = Math.min(Math.max(current.origin[0] + dx, 0), pose.canvas_width);
  const y = Math.min(Math.max(current.origin[1] + dy, 0), pose.canvas_height);
  return [snap(x), snap(y)];
}

function drawDrag() {
  drag.frame = 0;
  const target = dragTarget(drag);
  const translate = `translate(${target[0]} ${target[1]})`;
  if (drag.kind === 'person') layer.children[drag.person].setAttribute('transform', translate);
  else if (drag.kind === 'part') layer.children[drag.person].querySelector(`[data-group="${drag.part}"]`).setAttribute('transform', translate);
  else moveJoint(drag, target);
}

svg.addEventListener('pointerdown', (event) => {
  if (busy || drag || (event.pointerType === 'mouse' && event.button !== 0)) return;
  const node = event.target;
  event.preventDefault();
  root.focus({ preventScroll: true });
  if (!node.dataset || node.dataset.person === undefined) {
    selected = -1;
    picked = null;
    drawSelection();
    refreshControls();
    return;
  }
  const person = Number(node.dataset.person);
  const start = svgPoint(event);
  selected = person;
  const mode = dragMode.value;
  if (node.dataset.part) picked = { person, part: node.dataset.part, index: Number(node.dataset.index) };
  if (node.dataset.part && (mode === 'joint' || (mode === 'part' && node.dataset.part === 'body'))) {
    const { part, index } = picked;
    const values = points(person, part);
    drag = { kind: 'joint', person, part, index, start, origin: [values[index * 3], values[index * 3 + 1]] };
  } else if (node.dataset.part && mode === 'part') {
    drag = { kind: 'part', person, part: node.dataset.part, start };
  } else {
    drag = { kind: 'person', person, start };
  }
  drag.latest = start;
  drag.moved = false;
  drag.frame = 0;
  svg.setPointerCapture(event.pointerId);
  drawSelection();
  refreshControls();
});

svg.addEventListener('pointermove', (event) => {
  if (!drag) return;
  event.preventDefault();
  drag.latest = svgPoint(event);
  drag.moved = true;
  if (!drag.frame) drag.frame = requestAnimationFrame(drawDrag);
});

function endDrag(event, cancelled) {
  if (!drag) return;
  const finished = drag;
  if (finished.frame) cancelAnimationFrame(finished.frame);
  if (!cancelled && event) finished.latest = svgPoint(event);
  drag = null;
  const target = dragTarget(finished);
  const origin = finished.kind === 'joint' ? finished.origin : [0, 0];
  const still = target[0] === origin[0] && target[1] === origin[1];
  if (cancelled || !finished.moved || still) { render(); return; }
  if (finished.kind === 'person') {
    edit({ op: 'move', person: finished.person, dx: target[0], dy: target[1] });
    return;
  }
  const next = clone(pose);
  const name = field(finished.part);
  if (!next.people[finished.person][name]?.length) next.people[finished.person][name] = points(finished.person, finished.part).slice();
  const values = next.people[finished.person][name];
  if (finished.kind === 'joint') {
    values.splice(finished.index * 3, 2, target[0], target[1]);
  } else {  // a whole part: its visible points shifted, each kept on the canvas
    for (let index = 0; index < T.parts[finished.part].size; index += 1) {
      if (!visible(finished.person, finished.part, index)) continue;
      values[index * 3] = Math.min(Math.max(values[index * 3] + target[0], 0), pose.canvas_width);
      values[index * 3 + 1] = Math.min(Math.max(values[index * 3 + 1] + target[1], 0), pose.canvas_height);
    }
  }
  commit(next);
}

svg.addEventListener('pointerup', (event) => endDrag(event, false));
svg.addEventListener('pointercancel', () => endDrag(null, true));

function onKey(event) {
  if (!root.isConnected) { document.removeEventListener('keydown', onKey); return; }
  // Only for the editor: focus inside it, or on nothing in particular (the page's body), never a text field.
  const target = event.target;
  const ours = root.contains(target) || target === document.body || target === document.documentElement;
  if (!ours || !(event.ctrlKey || event.metaKey) || root.offsetParent === null) return;
  const letter = event.key.toLowerCase();
  if (letter === 'z' && !event.shiftKey) { event.preventDefault(); undo(); }
  else if ((letter === 'z' && event.shiftKey) || letter === 'y') { event.preventDefault(); redo(); }
}
document.addEventListener('keydown', onKey);

// The page loads a pose (a new load mark: history starts again) or sets the value or background.
watch(Object.keys({ value: 0, load_id: 0, background: 0 }), () => {
  const value = JSON.stringify(props.value);
  const valueCame = value !== lastValue;
  lastValue = value;
  if (props.load_id !== loadMark || (awaitingLoad && valueCame)) {
    awaitingLoad = props.load_id !== loadMark && !valueCame;
    loadMark = props.load_id;
    pose = asPose(props.value);
    baseline = JSON.stringify(pose);
    undoStack = [];
    redoStack = [];
    selected = -1;
    picked = null;
    render();
    setStatus('');
    return;
  }
  const incoming = asPose(props.value);
  if (JSON.stringify(incoming) !== JSON.stringify(pose)) {
    undoStack.push(JSON.stringify(pose));
    if (undoStack.length > T.history) undoStack.shift();
    redoStack = [];
    pose = incoming;
  }
  render();
});

render();
setStatus('');
