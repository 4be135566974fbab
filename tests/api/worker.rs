//! The worker one step at a time (`process_one`), on the embedded queue and bus: a job that cannot
//! be decoded is parked in the dead-letter list and does not hold up the jobs behind it.

use std::{sync::Arc, time::Duration};

use chatbox::{
    bus::Bus,
    config::Config,
    domain::{ChannelName, UserChannel, UserId},
    protocol::SocketId,
    queue::{Audience, Envelope, Job, MemoryQueue, Queue},
    store::Store,
    worker::{Outcome, Worker},
    ws::hub::{Hub, Outbox, Outgoing},
};
use serde_json::json;

use crate::helpers::{Backend, TestDb, settings};

/// Log lines written while a test runs on this thread.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// The poison job below carries a message body: the dead-letter log line says where the job
/// broke, never what it says (it printed the whole job before).
#[tokio::test]
async fn a_poison_job_is_parked_and_the_next_one_delivered() {
    let logs = Captured::default();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .finish(),
    );
    let db = TestDb::new(&Backend::Sqlite);
    let store = Store::connect(&Config::from_settings(settings(&db)).unwrap())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let hub = Arc::new(Hub::default());
    let queue = Queue::Memory(MemoryQueue::default());
    let worker = Worker {
        queue: queue.clone(),
        store,
        bus: Bus::Local(hub.clone()),
    };
    let (outbox, reader) = Outbox::new(8, chatbox::protocol::wire::WireKind::Pusher);
    hub.subscribe(
        &ChannelName::from(UserChannel::Group(UserId(7))),
        SocketId::random(),
        &outbox,
    );
    let good = Job::Event {
        to: Audience::Everyone,
        event: "App\\Events\\UserRegistered".into(),
        data: json!({"user": {"id": 8, "name": "new"}}),
    };
    queue
        .push(&[
            r#"{"job": {"body": "my bank PIN is 4321"#.to_owned(),
            Envelope::raw(1, &good.to_json()),
        ])
        .await
        .unwrap();

    let wait = Duration::from_millis(50);
    assert_eq!(
        worker.process_one(wait).await.unwrap(),
        Outcome::Done,
        "the poison job is parked"
    );
    assert_eq!(
        worker.process_one(wait).await.unwrap(),
        Outcome::Done,
        "the next job is processed"
    );
    assert_eq!(worker.process_one(wait).await.unwrap(), Outcome::Empty);
    assert_eq!(queue.depth().await.unwrap(), 0);
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("dead-letter"), "the parked job is logged: {logged}");
    assert!(!logged.contains("4321"), "but not its content: {logged}");
    match tokio::time::timeout(Duration::from_secs(1), reader.recv())
        .await
        .expect("delivered")
    {
        Outgoing::Frame { frame, .. } => {
            assert!(frame.as_str().contains("UserRegistered") && frame.as_str().contains("private-group.message.7"))
        }
        other => panic!("unexpected {other:?}"),
    }
}
