// The Predict path of the dispatcher: bind and validate refs, run the engine (inline on the
// reader thread when the engine says the work is quick and cannot block, else in a task with
// the deadline), reply, and track the input slots until they are released.
//
// Example (what the reader thread does with a Predict):
//   predict(p, rid, ctx)
//   // diag echo/add: answered before the next frame is read, like the Rust test helper
//   // Core ML, sleep, faults: a task; the deadline cancels it; Predicted or Error from the task
import Dispatch

extension Dispatcher {
    func predict(_ p: Predict, _ rid: UInt64, _ ctx: RequestContext) {
        let receipt = Sys.monotonicNanos()
        guard pendingLoads.withLock({ $0[p.modelId] }) == nil else {
            return spawnPredict(p, rid, receipt, ctx, prepared: nil)   // wait for the Load first
        }
        guard let call = preparePredict(p, rid, receipt: receipt) else { return }
        do {
            if let r = try engine.predictInline(call, ctx) { return completePredict(.success(r), call, rid) }
        } catch {
            return completePredict(.failure(error), call, rid)
        }
        spawnPredict(p, rid, receipt, ctx, prepared: call)
    }

    private func spawnPredict(_ p: Predict, _ rid: UInt64, _ receipt: UInt64, _ ctx: RequestContext, prepared: PredictCall?) {
        inFlight.enter()
        let task = Task {
            var call = prepared
            if call == nil {
                await self.waitForLoad(p.modelId)
                call = self.preparePredict(p, rid, receipt: receipt)
            }
            if let call {
                let result: Result<PredictResult, Error>
                do { result = .success(try await self.engine.predict(call, ctx)) } catch { result = .failure(error) }
                self.completePredict(result, call, rid)
            }
            self.inFlight.leave()
        }
        // The deadline cancels the request's task (the engine's awaits see it): one dispatch
        // timer rather than a timer task per request.
        if p.deadlineUs > 0 {
            let us = Int(min(p.deadlineUs, UInt64(Int.max / 1000)))
            DispatchQueue.global().asyncAfter(deadline: .now() + .microseconds(us)) { task.cancel() }
        }
    }

    /// Checks the model and binds every ref to its region; on failure replies and returns nil.
    func preparePredict(_ p: Predict, _ rid: UInt64, receipt: UInt64) -> PredictCall? {
        guard engine.hasModel(p.modelId) else {
            replyError(rid, .unknownModel, "no model is loaded under id \(p.modelId)")
            return nil
        }
        let inputs: [BoundTensor], outputs: [BoundTensor]
        do {
            inputs = try p.inputs.map { try bind($0) }
            outputs = try p.outputs.map { try bind($0) }
        } catch {
            let (code, message) = Self.classify(error, deadlinePassed: false)
            replyError(rid, code, message)
            return nil
        }
        let modelId = p.modelId
        let conn = connection
        let lease = InputLease {
            conn.send(Envelope(requestId: rid, message: .inputsReleased(ModelId(modelId: modelId))))
        }
        let deadline: UInt64? = p.deadlineUs == 0 ? nil : receipt &+ p.deadlineUs.multipliedReportingOverflow(by: 1000).partialValue
        return PredictCall(modelId: modelId, inputs: inputs, outputs: outputs, deadlineNanos: deadline, lease: lease)
    }

    /// Replies to a finished prediction. The dispatcher's own lease reference is dropped here;
    /// `Predicted` says whether the engine still holds the inputs. An `Error` goes out only once
    /// the inputs are released (docs/protocol.md).
    func completePredict(_ result: Result<PredictResult, Error>, _ call: PredictCall, _ rid: UInt64) {
        let lease = call.lease
        lease.release()
        switch result {
        case .success(let r):
            counters.withLock { $0.predictions += 1 }
            lease.replied { retained in
                reply(rid, .predicted(Predicted(modelId: call.modelId, outputs: r.outputs, inputsRetained: retained,
                                                marshalInUs: r.marshalInUs, predictUs: r.predictUs,
                                                marshalOutUs: r.marshalOutUs, outputsInPlace: r.outputsInPlace)))
            }
        case .failure(let e) where e is ReplySuppressed:
            return
        case .failure(let e):
            let passed = call.deadlineNanos.map { Sys.monotonicNanos() >= $0 } ?? false
            let (code, message) = Self.classify(e, deadlinePassed: passed)
            if lease.isReleased { return replyError(rid, code, message) }
            inFlight.enter()
            Task {
                await lease.waitUntilReleased()
                self.replyError(rid, code, message)
                self.inFlight.leave()
            }
        }
    }

    private func bind(_ t: NamedTensor) throws -> BoundTensor {
        guard let region = regions.region(UInt64(t.tensor.region)) else {
            throw EngineError(.shmFailed, "tensor \(t.name.debugDescription) names region \(t.tensor.region), which is not attached")
        }
        return try BoundTensor(name: t.name, ref: t.tensor, region: region)
    }
}
