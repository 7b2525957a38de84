// flow.js - a whole OpenWhisk session with the official npm client against a live nemod.
// env: NEMO_APIHOST (http://127.0.0.1:PORT), NEMO_API_KEY (uuid:key), NEMO_NS (its namespace),
//      NEMO_WORKDIR (a folder for the zip). Prints "OK <step> ..." per step, exits 1 at the
//      first step that fails, naming it.
'use strict'
const fs = require('fs')
const path = require('path')
const { execFileSync } = require('child_process')
const openwhisk = require('openwhisk')

const ow = openwhisk({ apihost: process.env.NEMO_APIHOST, api_key: process.env.NEMO_API_KEY })
const NAME = 'owflow'
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

function check (cond, step, what) {
  if (!cond) throw new Error(`${step}: ${what}`)
}

// a python action of two files: __main__.py imports helper.py
function makeZip () {
  const dir = process.env.NEMO_WORKDIR
  fs.writeFileSync(path.join(dir, '__main__.py'), [
    'import helper',
    '',
    'def main(args):',
    '    print("called with", sorted(args))',
    '    return {"msg": helper.greet(args.get("greeting", "?"), args.get("name", "nobody")),',
    '            "n": args.get("n", 0) + 1}',
    ''].join('\n'))
  fs.writeFileSync(path.join(dir, 'helper.py'),
    'def greet(greeting, name):\n    return "%s %s" % (greeting, name)\n')
  const zip = path.join(dir, 'action.zip')
  execFileSync('python3', ['-m', 'zipfile', '-c', zip, '__main__.py', 'helper.py'], { cwd: dir })
  return fs.readFileSync(zip)
}

async function run () {
  const ns = process.env.NEMO_NS

  const created = await ow.actions.create({
    name: NAME,
    action: makeZip(),
    kind: 'python:3',
    params: { greeting: 'hello' },
    limits: { timeout: 5000, memory: 128, logs: 1 }
  })
  check(created.name === NAME && created.exec.kind === 'python:3', 'create', JSON.stringify(created))
  console.log('OK create', created.version)

  let again = null
  try {
    await ow.actions.create({ name: NAME, action: 'def main(a): return a', kind: 'python:3' })
  } catch (e) { again = e.statusCode }
  check(again === 409, 'create-exists', `status ${again}`)
  console.log('OK create-exists 409')

  const list = await ow.actions.list({ limit: 10 })
  check(list.some(a => a.name === NAME), 'list', JSON.stringify(list.map(a => a.name)))
  console.log('OK list', list.length)

  const got = await ow.actions.get({ name: NAME })
  check(got.parameters.some(p => p.key === 'greeting' && p.value === 'hello'), 'get', JSON.stringify(got.parameters))
  check(got.limits.timeout === 5000 && got.namespace === ns, 'get', JSON.stringify(got.limits) + got.namespace)
  console.log('OK get', got.exec.kind, got.limits.timeout)

  const result = await ow.actions.invoke({ name: NAME, params: { name: 'nemo', n: 41 }, blocking: true, result: true })
  check(result.msg === 'hello nemo' && result.n === 42, 'invoke-result', JSON.stringify(result))
  console.log('OK invoke-result', result.msg, result.n)

  const rec = await ow.actions.invoke({ name: NAME, params: { name: 'record' }, blocking: true })
  check(rec.response.success === true && rec.response.status === 'success' && rec.response.statusCode === 0, 'invoke-record', JSON.stringify(rec.response))
  check(rec.namespace === ns && typeof rec.version === 'string' && rec.end >= rec.start, 'invoke-record', JSON.stringify(rec))
  const ann = Object.fromEntries(rec.annotations.map(a => [a.key, a.value]))
  check(ann.kind === 'python:3' && ann.path === `${ns}/${NAME}` && 'waitTime' in ann && ann.limits.timeout === 5000, 'invoke-record', JSON.stringify(rec.annotations))
  console.log('OK invoke-record', rec.activationId, ann.path)

  // non-blocking, polled to its end
  const pending = await ow.actions.invoke({ name: NAME, params: { name: 'later' } })
  check(/^[0-9a-f]{32}$/.test(pending.activationId), 'invoke-async', JSON.stringify(pending))
  let done = null
  for (let i = 0; i < 100 && !done; i++) {
    try {
      const a = await ow.activations.get({ name: pending.activationId })
      if (a.end > 0 && a.response.status !== 'pending') done = a
    } catch (e) { if (e.statusCode !== 404) throw e }
    if (!done) await sleep(100)
  }
  check(done && done.response.result.msg === 'hello later', 'invoke-async', JSON.stringify(done))
  console.log('OK invoke-async', done.activationId, done.duration >= 0)

  const res = await ow.activations.result({ name: pending.activationId })
  check(res.result.msg === 'hello later' && res.success === true, 'result', JSON.stringify(res))
  console.log('OK result')

  const logs = await ow.activations.logs({ name: pending.activationId })
  const line = logs.logs.find(l => l.includes('called with'))
  check(line && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z stdout: called with \[/.test(line), 'logs', JSON.stringify(logs))
  console.log('OK logs', JSON.stringify(line))

  const acts = await ow.activations.list({ name: NAME, limit: 2 })
  check(acts.length === 2 && acts.every(a => a.name === NAME), 'activations-list', JSON.stringify(acts))
  const skipped = await ow.activations.list({ name: NAME, limit: 1, skip: 1 })
  check(skipped.length === 1 && skipped[0].activationId === acts[1].activationId, 'activations-list', 'skip')
  console.log('OK activations-list', acts.length)

  // partial updates: only limits, then only parameters; the code stays
  await ow.actions.update({ name: NAME, action: { limits: { timeout: 7000 } } })
  const upd = await ow.actions.get({ name: NAME })
  check(upd.limits.timeout === 7000 && upd.exec.kind === 'python:3', 'update-limits', JSON.stringify(upd.limits))
  await ow.actions.update({ name: NAME, params: { greeting: 'hi' } })
  const hi = await ow.actions.invoke({ name: NAME, params: { name: 'nemo' }, blocking: true, result: true })
  check(hi.msg === 'hi nemo', 'update-params', JSON.stringify(hi))
  console.log('OK update', upd.limits.timeout, hi.msg)

  const nss = await ow.namespaces.list()
  check(Array.isArray(nss) && nss.includes(ns), 'namespaces', JSON.stringify(nss))
  console.log('OK namespaces', nss.join(','))

  let unsupported = null
  try { await ow.triggers.list() } catch (e) { unsupported = e.statusCode }
  check(unsupported === 501, 'triggers', `status ${unsupported}`)
  console.log('OK triggers 501')

  await ow.actions.delete({ name: NAME })
  let gone = null
  try { await ow.actions.get({ name: NAME }) } catch (e) { gone = e.statusCode }
  check(gone === 404, 'delete', `status ${gone}`)
  console.log('OK delete')
}

run().then(() => console.log('OK all')).catch(e => {
  console.log('FAIL', e.message, e.statusCode || '', e.error ? JSON.stringify(e.error) : '')
  process.exit(1)
})
