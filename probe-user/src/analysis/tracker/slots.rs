//! Where live connections are kept: slots that are reused once a connection has been
//! handed over, each with a generation so that a stale reference to a reused slot is
//! recognised.

use crate::analysis::tracker::Connection;

#[derive(Clone, Debug)]
struct Slot {
    connection: Option<Connection>,
    generation: u32,
}

#[derive(Clone, Debug, Default)]
pub struct Slots {
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Slots {
    /// Connections held.
    #[cfg(test)]
    pub fn live(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Slots ever used: every held connection has a slot below this.
    pub fn ever_used(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    pub fn get(&self, slot: u32) -> Option<&Connection> {
        self.slots.get(slot as usize)?.connection.as_ref()
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut Connection> {
        self.slots.get_mut(slot as usize)?.connection.as_mut()
    }

    /// How often a slot has been released.
    pub fn generation(&self, slot: u32) -> u32 {
        self.slots.get(slot as usize).map_or(0, |s| s.generation)
    }

    pub fn allocate(&mut self, connection: Connection) -> u32 {
        if let Some(slot) = self.free.pop() {
            self.slots[slot as usize].connection = Some(connection);
            slot
        } else {
            self.slots.push(Slot {
                connection: Some(connection),
                generation: 0,
            });
            self.ever_used() - 1
        }
    }

    /// Drops the connection in place; the slot is free for the next one.
    pub fn free(&mut self, slot: u32) {
        let Some(entry) = self.slots.get_mut(slot as usize) else {
            return;
        };
        if entry.connection.is_some() {
            entry.connection = None;
            entry.generation = entry.generation.wrapping_add(1);
            self.free.push(slot);
        }
    }

    /// Takes the connection out; the slot is free for the next one.
    pub fn release(&mut self, slot: u32) -> Option<Connection> {
        let entry = self.slots.get_mut(slot as usize)?;
        let connection = entry.connection.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        Some(connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_slots_are_reused_with_a_new_generation() {
        let mut slots = Slots::default();
        let a = slots.allocate(Connection::new(1, 0));
        let b = slots.allocate(Connection::new(2, 0));
        assert_eq!((slots.live(), slots.ever_used()), (2, 2));
        assert_eq!(slots.release(a).map(|c| c.first_seen_ns), Some(1));
        assert_eq!(slots.release(a), None, "released once");
        assert_eq!(slots.generation(a), 1);
        assert_eq!(slots.live(), 1);
        let c = slots.allocate(Connection::new(3, 0));
        assert_eq!(c, a);
        assert_eq!(slots.get(c).map(|c| c.first_seen_ns), Some(3));
        assert!(slots.get_mut(b).is_some());
        assert_eq!((slots.live(), slots.ever_used()), (2, 2));
        assert_eq!(slots.get(9), None);
        slots.free(b);
        slots.free(b);
        assert_eq!((slots.live(), slots.generation(b)), (1, 1), "freed once");
    }
}
